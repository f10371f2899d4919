package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edge/nfs-watcher-uploader/internal/failure"
)

// complete moves the uploaded file into .done (the GC deletes it there).
// It runs only after the blob was confirmed with the source's size and
// CRC64, and only if the claimed file still is what was uploaded: bytes a
// writer appended after the copy would otherwise be deleted unuploaded.
func (p *Pipeline) complete(ctx context.Context, it *Item, src *source) error {
	from := p.processingPath(it)
	to := filepath.Join(p.opts.Layout.DoneDir(it.Date, it.Session), it.Name)
	done := filepath.Dir(to)
	if err := sameFile(from, src.sig, true); err != nil {
		return err
	}
	var err error
	for range 3 {
		if err = os.MkdirAll(done, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", done, err)
		}
		err = os.Rename(from, to)
		if err == nil || !benign(err) {
			break
		}
		// ENOENT may mean GC removed an empty .done between the two calls.
		if _, serr := os.Lstat(from); serr != nil {
			break
		}
	}
	switch {
	case err == nil:
	case benign(err):
		if _, serr := os.Lstat(from); serr == nil {
			return fmt.Errorf("mark completed: %w (the file is still in processing)", err)
		}
		// Gone after a confirmed upload (a lost reply to our own rename,
		// or an operator): nothing is lost.
		p.log.WarnContext(ctx, "uploaded file was already gone from processing", "session", it.Session,
			"file", it.Name, "step", "complete", "error", err.Error())
		return nil
	case errors.Is(err, os.ErrPermission):
		return failure.Permanentf("mark completed: %v", err)
	default:
		return fmt.Errorf("mark completed: %w", err)
	}
	// A write between the check and the rename: put it back and upload again.
	// (The rename itself moves ctime, so only size, mtime and inode count.)
	if err := sameFile(to, src.sig, false); err != nil {
		if rerr := renameNoReplace(to, from); rerr != nil {
			p.log.ErrorContext(ctx, "file changed after upload and cannot be moved back from .done", "session", it.Session,
				"file", it.Name, "step", "complete", "error", rerr.Error())
		}
		return err
	}
	return nil
}

// sameFile fails with errChanged unless the file at path still has the
// signature it was read with.
func sameFile(path string, was Sig, withCtime bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // the rename decides what a missing file means
		}
		return err
	}
	now := SigOf(fi)
	if !withCtime {
		now.Ctime = was.Ctime
	}
	if now != was {
		return fmt.Errorf("%w (size %d→%d)", errChanged, was.Size, now.Size)
	}
	return nil
}
