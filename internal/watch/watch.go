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

	prev    map[string]seen
	skipped map[string]pipeline.Skipped
	epoch   time.Time
}

// seen is a file's signature and since when (on this process's monotonic
// clock, relative to epoch) the watcher has seen it unchanged.
type seen struct {
	sig   pipeline.Sig
	since time.Duration
}

// Run polls until ctx ends. A failed scan (NFS away) backs off
// exponentially up to MaxBackoff and never ends the loop.
func (w *Watcher) Run(ctx context.Context) {
	delay := w.Poll
	t := time.NewTimer(0) // first scan at once
	defer t.Stop()
	// A stopped session's entries are no longer anyone's to report.
	defer w.Stats.SetSkipped(w.prefix(), nil)
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

// ScanOnce reads the folder once and offers every file whose signature
// (size, mtime, ctime, inode) has stayed the same for at least MinAge, as
// measured on this process's own clock, and on at least two polls. The
// file's timestamps only tell whether it changed, never how old it is: the
// producer's or NFS server's clock may be minutes or years off.
func (w *Watcher) ScanOnce(ctx context.Context) error {
	start := time.Now()
	if w.prev == nil {
		w.prev = map[string]seen{}
		w.epoch = start
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
	cur := make(map[string]seen, len(w.prev))
	skipped := map[string]pipeline.Skipped{}
	now := time.Since(w.epoch)
	for _, e := range entries {
		name := e.Name()
		if name[0] == '.' {
			// Producers' temp files (rsync's .name.XXXX) are renamed into place when done.
			continue
		}
		if reason := rejectReason(name, e.Type()); reason != "" {
			w.skip(ctx, skipped, name, reason)
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
		s := pipeline.SigOf(info)
		prev, ok := w.prev[name]
		if !ok || prev.sig != s {
			cur[name] = seen{sig: s, since: now}
			continue
		}
		if now-prev.since >= w.MinAge {
			it.Found = start
			if !w.Sink.Offer(ctx, it) && ctx.Err() != nil {
				return nil
			}
			continue
		}
		cur[name] = prev
	}
	w.prev = cur
	w.skipped = skipped
	w.Stats.SetSkipped(w.prefix(), skipped)
	w.Stats.Observer().ScanDone(ctx, w.Session, time.Since(start), len(entries))
	return nil
}

func (w *Watcher) prefix() string { return pipeline.BlobName(w.Date, w.Session, "") }

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

// skip records an entry left in place; it is logged when first seen or
// when its reason changes, however many others there are.
func (w *Watcher) skip(ctx context.Context, into map[string]pipeline.Skipped, name, reason string) {
	shown := displayName(name)
	entry := pipeline.Skipped{File: pipeline.BlobName(w.Date, w.Session, shown), Reason: reason, Since: time.Now()}
	if old, ok := w.skipped[name]; ok && old.Reason == reason {
		entry.Since = old.Since
	} else {
		w.Log.WarnContext(ctx, "incoming entry left in place", "session", w.Session, "file", shown,
			"step", "scan", "reason", reason)
	}
	into[name] = entry
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
