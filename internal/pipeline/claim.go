package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/edge/nfs-watcher-uploader/internal/failure"

	"golang.org/x/sys/unix"
)

// benign reports NFS answers that mean "the file is no longer there":
// ESTALE is how NFS says another client renamed or removed it.
func benign(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESTALE)
}

// claim moves incoming/<s>/<path> to .processing/<d>/<s>/<path> with one
// rename on the same filesystem: atomic, so the file is either still the
// producer's or wholly ours. It never replaces a file already in
// .processing (that one is in flight and not yet uploaded).
func (p *Pipeline) claim(ctx context.Context, it *Item) error {
	d := p.dirsOf(it)
	src, dst := under(d.incoming, it.Name), under(d.processing, it.Name)
	err := renameNoReplace(src, dst)
	if errors.Is(err, os.ErrNotExist) {
		// The processing folder (or the file's sub-folder) is missing: new,
		// or removed by the GC when it emptied; create it and retry once.
		if _, serr := os.Lstat(src); serr == nil {
			dir := filepath.Dir(dst)
			if merr := os.MkdirAll(dir, 0o755); merr != nil {
				return fmt.Errorf("create %s: %w", dir, merr)
			}
			err = renameNoReplace(src, dst)
		}
	}
	switch {
	case err == nil:
		return nil
	case benign(err):
		return errSkip
	case errors.Is(err, os.ErrExist):
		// We hold this name's reservation, so the file in .processing is
		// nobody's: an earlier claim whose reply was lost. It goes first; the
		// new file waits in incoming for the next scan.
		p.log.InfoContext(ctx, "an unfinished file of this name is in processing; uploading it first", "session", it.Session,
			"file", it.Name, "step", "claim")
		return nil
	case errors.Is(err, os.ErrPermission):
		return failure.Permanentf("rename %s: %v", it.Name, err)
	default:
		return fmt.Errorf("rename %s: %w", it.Name, err)
	}
}

// renameNoReplace uses RENAME_NOREPLACE where the filesystem has it; NFS
// does not, so there it checks first. Only this process writes into its
// processing root, so the check cannot race with another claimer.
func renameNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	if _, err := os.Lstat(dst); err == nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: os.ErrExist}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Rename(src, dst)
}
