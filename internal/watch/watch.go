// Package watch polls a session's incoming folder and hands stable files to
// the pipeline.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/edge/nfs-watcher-uploader/internal/pipeline"
)

// MaxBackoff caps the wait after repeated scan errors.
const MaxBackoff = 60 * time.Second

// Sink is the pipeline as the watcher sees it.
type Sink interface {
	Pending(key string) bool
	Offer(ctx context.Context, it *pipeline.Item) bool
}

// Watcher polls one incoming folder.
type Watcher struct {
	Dir        string
	Session    string
	Date       string
	Extensions map[string]bool // nil: every name
	MinAge     time.Duration
	Poll       time.Duration
	Sink       Sink
	Stats      *pipeline.Stats
	Log        *slog.Logger

	prev    map[string]sig
	skipped map[string]bool
}

type sig struct {
	size  int64
	mtime int64
}

// Run polls until ctx ends. A failed scan (NFS away) backs off
// exponentially up to MaxBackoff and never ends the loop.
func (w *Watcher) Run(ctx context.Context) {
	delay := w.Poll
	t := time.NewTimer(0) // first scan at once
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := w.ScanOnce(ctx)
		switch {
		case err == nil:
			delay = w.Poll
		case ctx.Err() != nil:
			return
		default:
			delay = min(max(delay*2, w.Poll), MaxBackoff)
			w.Log.ErrorContext(ctx, "scan failed; backing off", "session", w.Session, "dir", w.Dir,
				"step", "scan", "error", err.Error(), "retry_in_ms", delay.Milliseconds())
		}
		t.Reset(delay)
	}
}

// ScanOnce reads the folder once and offers every file that was seen with
// the same size and mtime on the previous scan and is older than MinAge.
func (w *Watcher) ScanOnce(ctx context.Context) error {
	start := time.Now()
	if w.prev == nil {
		w.prev = map[string]sig{}
		w.skipped = map[string]bool{}
	}
	f, err := os.Open(w.Dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", w.Dir, err)
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", w.Dir, err)
	}
	cur := make(map[string]sig, len(w.prev))
	seenSkipped := map[string]bool{}
	now := time.Now()
	for _, e := range entries {
		name := e.Name()
		if name[0] == '.' {
			// Producers' temp files (rsync's .name.XXXX) are renamed into place when done.
			continue
		}
		if reason := rejectReason(name, e.Type()); reason != "" {
			w.skip(ctx, name, reason)
			seenSkipped[name] = true
			continue
		}
		if w.Extensions != nil && !w.Extensions[filepath.Ext(name)] {
			continue
		}
		it := &pipeline.Item{Session: w.Session, Date: w.Date, Name: name}
		if w.Sink.Pending(it.Key()) {
			// An earlier file of this name is in flight; this one must be
			// seen stable again after that one is done.
			continue
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESTALE) {
				continue
			}
			w.Log.WarnContext(ctx, "cannot stat incoming file", "session", w.Session, "file", name,
				"step", "scan", "error", err.Error())
			continue
		}
		if !info.Mode().IsRegular() {
			// Replaced by something else between readdir and lstat.
			continue
		}
		s := sig{info.Size(), info.ModTime().UnixNano()}
		if prev, ok := w.prev[name]; ok && prev == s && now.Sub(info.ModTime()) >= w.MinAge {
			it.Found = now
			if !w.Sink.Offer(ctx, it) {
				if ctx.Err() != nil {
					return nil
				}
			}
			continue
		}
		cur[name] = s
	}
	w.prev = cur
	for name := range w.skipped {
		if !seenSkipped[name] {
			w.Stats.Unskip(pipeline.BlobName(w.Date, w.Session, displayName(name)))
		}
	}
	w.skipped = seenSkipped
	w.Stats.Observer().ScanDone(ctx, w.Session, time.Since(start), len(entries))
	return nil
}

func rejectReason(name string, mode fs.FileMode) string {
	switch {
	case !utf8.ValidString(name):
		return "name is not valid UTF-8, which a blob name cannot hold; rename the file"
	case hasControl(name):
		return "name holds control characters (such as a newline), which Azure refuses in blob names; rename the file"
	case mode&fs.ModeSymlink != 0:
		return "symbolic link: only regular files are uploaded"
	case mode.IsDir():
		return "folder: only regular files directly in the session folder are uploaded"
	case !mode.IsRegular():
		return "not a regular file (FIFO, socket or device)"
	}
	return ""
}

// hasControl reports C0 and C1 control characters and DEL: Azure rejects
// them in blob names, so such a file could never be uploaded.
func hasControl(name string) bool {
	for _, r := range name {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return true
		}
	}
	return false
}

func (w *Watcher) skip(ctx context.Context, name, reason string) {
	if w.Stats.Skip(pipeline.BlobName(w.Date, w.Session, displayName(name)), reason) {
		w.Log.WarnContext(ctx, "incoming entry left in place", "session", w.Session, "file", displayName(name),
			"step", "scan", "reason", reason)
	}
}

// displayName shows bytes that are not UTF-8 as \xNN escapes, so JSON
// logs and status name the file unambiguously.
func displayName(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	q := strconv.Quote(name)
	return q[1 : len(q)-1]
}
