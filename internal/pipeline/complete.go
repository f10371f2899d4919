package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// complete moves the uploaded file into .done (the GC deletes it there) and
// removes the staging copy. It runs only after the blob was read back with
// the same size and MD5.
func (p *Pipeline) complete(ctx context.Context, it *Item, src *source) error {
	l := p.opts.Layout
	done := l.DoneDir(it.Date, it.Session)
	from := filepath.Join(l.ProcessingDir(it.Date, it.Session), it.Name)
	var err error
	for range 3 {
		if err = os.MkdirAll(done, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", done, err)
		}
		err = os.Rename(from, filepath.Join(done, it.Name))
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
		// Gone after a confirmed upload: nothing is lost.
		p.log.WarnContext(ctx, "uploaded file was already gone from processing", "session", it.Session,
			"file", it.Name, "step", "complete", "error", err.Error())
	default:
		return fmt.Errorf("mark completed: %w", err)
	}
	if src.staging != "" {
		if err := os.Remove(src.staging); err != nil && !errors.Is(err, os.ErrNotExist) {
			p.log.WarnContext(ctx, "could not delete staging copy", "session", it.Session, "file", it.Name,
				"step", "complete", "error", err.Error())
		}
	}
	return nil
}
