package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
)

// GC deletes completed files (those in .done) from NFS and removes empty
// session and date folders, except the active session's (keep reports the
// date/session pairs to keep). It returns how many files it deleted.
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
				files, err := os.ReadDir(done)
				if err == nil {
					for _, f := range files {
						err := os.Remove(filepath.Join(done, f.Name()))
						switch {
						case err == nil:
							deleted++
						case !errors.Is(err, os.ErrNotExist):
							// Its blob is confirmed: the next GC run tries again.
							p.log.WarnContext(ctx, "cannot delete a completed file", "session", s.Name(),
								"file", f.Name(), "step", "gc", "error", err.Error())
							note(err)
						}
					}
				}
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
