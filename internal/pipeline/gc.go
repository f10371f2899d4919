package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
)

// GC deletes completed files (those in .done) from NFS and removes empty
// session and date folders in processing and staging, except the active
// session's (keep reports the date/session pairs to keep). It returns how
// many files it deleted.
func (p *Pipeline) GC(ctx context.Context, keep func(date, session string) bool) (int, error) {
	deleted := 0
	var firstErr error
	note := func(err error) {
		if err != nil && !errors.Is(err, os.ErrNotExist) && firstErr == nil {
			firstErr = err
		}
	}
	for _, root := range []string{p.opts.Layout.Processing, p.opts.Layout.Staging} {
		dates, err := os.ReadDir(root)
		note(err)
		for _, d := range dates {
			if !d.IsDir() || !isDate(d.Name()) {
				continue
			}
			ddir := filepath.Join(root, d.Name())
			sessions, err := os.ReadDir(ddir)
			note(err)
			for _, s := range sessions {
				if !s.IsDir() || ctx.Err() != nil {
					continue
				}
				sdir := filepath.Join(ddir, s.Name())
				done := filepath.Join(sdir, DoneDirName)
				if root == p.opts.Layout.Processing {
					n, err := p.deleteCompleted(ctx, s.Name(), done)
					deleted += n
					note(err)
				}
				pruneEmpty(sdir)
				if !keep(d.Name(), s.Name()) {
					_ = os.Remove(done) // fails while not empty: fine
					_ = os.Remove(sdir)
				}
			}
			_ = os.Remove(ddir)
		}
	}
	p.stats.gcDeleted(ctx, int64(deleted))
	return deleted, firstErr
}

// deleteCompleted deletes the files below one .done folder, at any depth,
// and the folders they leave empty; their blobs are confirmed. A file that
// cannot be deleted is tried again at the next run.
func (p *Pipeline) deleteCompleted(ctx context.Context, session, done string) (int, error) {
	files, err := os.ReadDir(done)
	if err != nil {
		return 0, nil // no .done yet
	}
	deleted := 0
	var firstErr error
	for _, f := range files {
		path := filepath.Join(done, f.Name())
		if f.IsDir() {
			n, err := p.deleteCompleted(ctx, session, path)
			deleted += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
			_ = os.Remove(path) // fails while not empty: fine
			continue
		}
		err := os.Remove(path)
		switch {
		case err == nil:
			deleted++
		case !errors.Is(err, os.ErrNotExist):
			p.log.WarnContext(ctx, "cannot delete a completed file", "session", session,
				"file", f.Name(), "step", "gc", "error", err.Error())
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return deleted, firstErr
}

// pruneEmpty removes the empty sub-folders below dir (not dir itself):
// the service made them for nested files that are gone now. A claim that
// loses its folder to this recreates it.
func pruneEmpty(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != DoneDirName {
			sub := filepath.Join(dir, e.Name())
			pruneEmpty(sub)
			_ = os.Remove(sub) // fails while not empty: fine
		}
	}
}
