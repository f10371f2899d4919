package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// isDate reports whether s looks like a YYYYMMDD folder.
func isDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	_, err := time.Parse("20060102", s)
	return err == nil
}

// Recover runs once at start-up: it deletes staging copies left by a crash
// (staging is private to this process, and every copy is made again from
// .processing), then reserves every unfinished file in this pod's
// processing root and returns them; the caller queues them with
// EnqueueAll. Only the processing root itself being unreadable is an
// error: a session folder that cannot be read is reported and skipped.
func (p *Pipeline) Recover(ctx context.Context) ([]*Item, error) {
	p.cleanStaging(ctx)
	return p.unfinished(ctx)
}

// Sweep queues files in the processing root that no one is working on: a
// claim whose reply was lost (ENOENT although the rename happened) leaves
// its file there, not pending, until found here.
func (p *Pipeline) Sweep(ctx context.Context) (int, error) {
	items, err := p.unfinished(ctx)
	if len(items) > 0 {
		p.log.WarnContext(ctx, "found unfinished files no worker held; uploading them", "step", "sweep", "files", len(items))
		p.EnqueueAll(ctx, items)
	}
	return len(items), err
}

// unfinished reserves the files in <processing>/<date>/<session>/ that are
// not pending and returns them. Files in .done are left to the GC.
func (p *Pipeline) unfinished(ctx context.Context) ([]*Item, error) {
	root := p.opts.Layout.Processing
	dates, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", root, err)
	}
	var items []*Item
	now := time.Now()
	for _, d := range dates {
		if !d.IsDir() || !isDate(d.Name()) {
			continue
		}
		sessions, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			p.unreadable(ctx, filepath.Join(root, d.Name()), err)
			continue
		}
		for _, s := range sessions {
			if !s.IsDir() || s.Name()[0] == '.' {
				continue
			}
			dir := filepath.Join(root, d.Name(), s.Name())
			p.walkUnfinished(ctx, dir, "", 0, func(rel string) {
				it := &Item{Session: s.Name(), Date: d.Name(), Name: rel, Claimed: true, Found: now}
				if p.Reserve(it) {
					items = append(items, it)
				}
			})
		}
	}
	return items, nil
}

// walkUnfinished calls found with the path (below a session's processing
// folder) of every regular file there, at any depth, outside .done and
// other dot folders.
func (p *Pipeline) walkUnfinished(ctx context.Context, dir, rel string, depth int, found func(rel string)) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		p.unreadable(ctx, dir, err)
		return
	}
	for _, e := range entries {
		name := e.Name()
		if name[0] == '.' {
			continue
		}
		relName := Child(rel, name)
		switch {
		case e.IsDir() && depth < maxDepth:
			p.walkUnfinished(ctx, filepath.Join(dir, name), relName, depth+1, found)
		case e.Type().IsRegular():
			found(relName)
		}
	}
}

// maxDepth bounds how deep the processing folders are walked: the watcher
// never claims from deeper than 32 folders.
const maxDepth = 64

func (p *Pipeline) unreadable(ctx context.Context, dir string, err error) {
	if errors.Is(err, os.ErrNotExist) {
		return // removed by the GC since the parent was listed
	}
	p.stats.problem(dir, err)
	p.log.ErrorContext(ctx, "cannot read a processing folder; skipped, tried again at the next sweep", "step", "recovery",
		"dir", dir, "error", err.Error())
}

// cleanStaging removes everything under the staging root.
func (p *Pipeline) cleanStaging(ctx context.Context) {
	root := p.opts.Layout.Staging
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			p.log.WarnContext(ctx, "cannot remove a staging leftover", "step", "recovery", "path", e.Name(), "error", err.Error())
		}
	}
}

// EnqueueAll queues reserved items in the background; a queue smaller
// than the backlog must not hold up start-up.
func (p *Pipeline) EnqueueAll(ctx context.Context, items []*Item) {
	go func() {
		for i, it := range items {
			if p.enqueue(ctx, it) != nil {
				for _, rest := range items[i:] {
					p.release(context.WithoutCancel(ctx), rest)
				}
				return
			}
		}
	}()
}
