package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edge/nfs-watcher-uploader/internal/failure"

	"golang.org/x/sys/unix"
)

// complete moves the uploaded file into .done (the GC deletes it there).
// It runs only after the blob was confirmed with the source's size and
// CRC64, and only if the claimed file still is what was uploaded: bytes a
// writer appended after the copy would otherwise be deleted unuploaded.
func (p *Pipeline) complete(ctx context.Context, it *Item, src *source) error {
	d := p.dirsOf(it)
	from, to := under(d.processing, it.Name), under(d.done, it.Name)
	if err := sameFile(from, src.sig, true); err != nil {
		return err
	}
	// .done is there for every file but a session's first (or the first
	// after the GC removed it as it emptied): try the rename first, and
	// create the folder only when the rename says it is missing.
	err := rename(from, to)
	for range 2 { // at most three renames, as before

		if err == nil || !benign(err) {
			break
		}
		// ENOENT with the file still in processing: the folder is missing
		// (and GC may remove it again between the two calls).
		if _, serr := os.Lstat(from); serr != nil {
			break
		}
		done := filepath.Dir(to)
		if err = os.MkdirAll(done, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", done, err)
		}
		err = rename(from, to)
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
	var st unix.Stat_t
	if err := stat(path, &st); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // the rename decides what a missing file means
		}
		return err
	}
	now := SigOfStat(&st)
	if !withCtime {
		now.Ctime = was.Ctime
	}
	if now != was {
		return fmt.Errorf("%w (size %d→%d)", errChanged, was.Size, now.Size)
	}
	return nil
}

// rename is os.Rename without its Lstat of the destination, which only
// turns renaming onto a directory into EEXIST instead of the kernel's
// EISDIR; both are failures here, and the Lstat is a round trip to the NFS
// server per file.
func rename(from, to string) error {
	if err := ignoringEINTR(func() error { return unix.Rename(from, to) }); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// stat is os.Stat into a stat buffer of the caller's: no FileInfo to
// allocate for the two checks every completion makes.
func stat(path string, st *unix.Stat_t) error {
	if err := ignoringEINTR(func() error { return unix.Stat(path, st) }); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return nil
}

// ignoringEINTR repeats a system call a signal interrupted, as package os
// does for its own.
func ignoringEINTR(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}
