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

// Recover reserves every unfinished file in this pod's processing root and
// returns them; the caller queues them with Enqueue. Files already in .done
// are left to the GC. Only this root is read, so pods sharing one NFS
// export never take each other's files.
func (p *Pipeline) Recover() ([]*Item, error) {
	root := p.opts.Layout.Processing
	dates, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("recovery: read %s: %w", root, err)
	}
	var items []*Item
	now := time.Now()
	for _, d := range dates {
		if !d.IsDir() || !isDate(d.Name()) {
			continue
		}
		sessions, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("recovery: %w", err)
		}
		for _, s := range sessions {
			if !s.IsDir() || s.Name()[0] == '.' {
				continue
			}
			files, err := os.ReadDir(filepath.Join(root, d.Name(), s.Name()))
			if err != nil {
				return nil, fmt.Errorf("recovery: %w", err)
			}
			for _, f := range files {
				if !f.Type().IsRegular() || f.Name()[0] == '.' {
					continue
				}
				it := &Item{Session: s.Name(), Date: d.Name(), Name: f.Name(), Claimed: true, Found: now}
				if p.Reserve(it) {
					items = append(items, it)
				}
			}
		}
	}
	return items, nil
}

// EnqueueAll queues recovered items in the background; a queue smaller
// than the backlog must not hold up start-up.
func (p *Pipeline) EnqueueAll(ctx context.Context, items []*Item) {
	go func() {
		for _, it := range items {
			if p.enqueue(ctx, it) != nil {
				return
			}
		}
	}()
}
