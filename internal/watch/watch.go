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
	"path"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/edge/nfs-watcher-uploader/internal/pipeline"
	"golang.org/x/sys/unix"
)

// MaxBackoff caps the wait after repeated scan errors.
const MaxBackoff = 60 * time.Second

// Sink is the pipeline as the watcher sees it.
type Sink interface {
	Pending(date, session, name string) bool
	Offer(ctx context.Context, it *pipeline.Item) bool
}

// Watcher polls one incoming folder.
type Watcher struct {
	Dir        string
	Session    string
	Date       string
	Extensions map[string]bool // nil: every name
	Exclude    []string        // glob patterns on base names: left in place, not reported
	MinAge     time.Duration
	Poll       time.Duration
	Sink       Sink
	Stats      *pipeline.Stats
	Log        *slog.Logger

	now         func() time.Time // nil: time.Now; tests move it
	prev        map[string]seen
	skipped     map[string]pipeline.Skipped
	epoch       time.Time
	prefixRunes int // characters of the session's blob prefix
}

// seen is a file's signature and since when (on this process's monotonic
// clock, relative to epoch) the watcher has seen it unchanged.
type seen struct {
	sig   pipeline.Sig
	since time.Duration
	// moving: the file changed between two polls, so it is being written
	// and is stat'ed on every poll until it stops.
	moving bool
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

// Limits of what can become a blob name: Azure's 1,024 characters and
// path segments of at most 254; folders deeper than MaxDepth are not entered.
const (
	MaxDepth       = 32
	maxBlobName    = 1024
	maxSegmentName = 254
)

// scan is the state of one poll.
type scan struct {
	start   time.Time
	now     time.Duration
	cur     map[string]seen
	skipped map[string]pipeline.Skipped
	entries int
}

// ScanOnce walks the session folder once (sub-folders too, up to MaxDepth)
// and offers every regular file whose signature (size, mtime, ctime, inode)
// has stayed the same for at least MinAge, as measured on this process's
// own clock, and on at least two polls. The file's timestamps only tell
// whether it changed, never how old it is: the producer's or NFS server's
// clock may be minutes or years off.
func (w *Watcher) ScanOnce(ctx context.Context) error {
	clock := w.now
	if clock == nil {
		clock = time.Now
	}
	start := clock()
	if w.prev == nil {
		w.prev = map[string]seen{}
		w.epoch = start
		w.prefixRunes = utf8.RuneCountInString(w.prefix())
	}
	sc := &scan{start: start, now: start.Sub(w.epoch), cur: make(map[string]seen, len(w.prev)), skipped: map[string]pipeline.Skipped{}}
	if err := w.scanDir(ctx, sc, w.Dir, "", 0); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	w.prev = sc.cur
	w.skipped = sc.skipped
	w.Stats.SetSkipped(w.prefix(), sc.skipped)
	w.Stats.Observer().ScanDone(ctx, w.Session, time.Since(start), sc.entries)
	return nil
}

// scanDir reads one folder; rel is its path below the session folder.
// Only the session folder itself failing fails the scan: a sub-folder that
// cannot be read is logged and tried again at the next poll.
func (w *Watcher) scanDir(ctx context.Context, sc *scan, dir, rel string, depth int) error {
	subdirs, err := w.scanFiles(ctx, sc, dir, rel, depth)
	if err != nil {
		return err
	}
	for _, name := range subdirs {
		if ctx.Err() != nil {
			return nil
		}
		relName := pipeline.Child(rel, name)
		if err := w.scanDir(ctx, sc, filepath.Join(dir, name), relName, depth+1); err != nil && !gone(err) {
			w.Log.WarnContext(ctx, "cannot read an incoming folder; tried again at the next poll", "session", w.Session,
				"file", displayName(relName), "step", "scan", "error", err.Error())
		}
	}
	return nil
}

// scanFiles considers the files of one folder and returns its sub-folders
// to enter. The folder stays open only meanwhile, its files being stat'ed
// relative to it (see consider): sub-folders are entered after it is
// closed, so a deep tree holds one descriptor, not one per level.
func (w *Watcher) scanFiles(ctx context.Context, sc *scan, dir, rel string, depth int) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	fd := int(f.Fd())
	sc.entries += len(entries)
	var subdirs []string
	for _, e := range entries {
		if ctx.Err() != nil {
			return nil, nil
		}
		name := e.Name()
		if name[0] == '.' {
			// Producers' temp files and folders (rsync's .name.XXXX) are
			// renamed into place when done.
			continue
		}
		relName := pipeline.Child(rel, name)
		if reason := w.rejectReason(relName, name, e.Type(), depth); reason != "" {
			w.skip(ctx, sc.skipped, relName, reason)
			continue
		}
		if e.IsDir() {
			subdirs = append(subdirs, name)
			continue
		}
		if w.Extensions != nil && !w.Extensions[filepath.Ext(name)] || w.excluded(name) {
			continue
		}
		w.consider(ctx, sc, fd, dir, name, relName)
	}
	return subdirs, nil
}

// consider offers one regular file once it has been still long enough.
// Most visits to a file end before its Item is made: it is queued already,
// or not yet still long enough.
// The file (name in dir, open as dirfd) is stat'ed relative to its folder:
// no path to build and resolve again, no FileInfo to allocate, every
// poll, for every file that is not queued yet.
func (w *Watcher) consider(ctx context.Context, sc *scan, dirfd int, dir, name, relName string) {
	if w.Sink.Pending(w.Date, w.Session, relName) {
		// An earlier file of this name is in flight; this one must be
		// seen stable again after that one is done.
		return
	}
	prev, ok := w.prev[relName]
	if ok && !prev.moving && sc.now-prev.since < w.MinAge {
		// Not still long enough yet, whatever a stat would say: any change
		// moves ctime, so the stat once MinAge is up still sees it. This
		// saves an NFS round trip per file and poll; a file seen changing
		// is stat'ed every poll instead, so it is taken MinAge after its
		// last write as before.
		sc.cur[relName] = prev
		return
	}
	var st unix.Stat_t
	if err := lstatAt(dirfd, name, &st); err != nil {
		if !gone(err) {
			err = &fs.PathError{Op: "lstat", Path: filepath.Join(dir, name), Err: err}
			w.Log.WarnContext(ctx, "cannot stat incoming file", "session", w.Session, "file", relName,
				"step", "scan", "error", err.Error())
		}
		return
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return // replaced by something else between readdir and lstat
	}
	s := pipeline.SigOfStat(&st)
	if !ok || prev.sig != s {
		sc.cur[relName] = seen{sig: s, since: sc.now, moving: ok}
		return
	}
	if sc.now-prev.since < w.MinAge {
		sc.cur[relName] = prev // seen moving: stat'ed again next poll
		return
	}
	w.Sink.Offer(ctx, &pipeline.Item{Session: w.Session, Date: w.Date, Name: relName, Found: sc.start, Size: s.Size})
}

func gone(err error) bool { return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESTALE) }

func (w *Watcher) excluded(name string) bool {
	for _, pat := range w.Exclude {
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
	}
	return false
}

func (w *Watcher) prefix() string { return pipeline.BlobName(w.Date, w.Session, "") }

func (w *Watcher) rejectReason(relName, name string, mode fs.FileMode, depth int) string {
	switch {
	case !utf8.ValidString(name):
		return "name is not valid UTF-8, which a blob name cannot hold; rename the file"
	case hasControl(name):
		return "name holds control characters (such as a newline), which Azure refuses in blob names; rename the file"
	case mode&fs.ModeSymlink != 0:
		return "symbolic link: only regular files are uploaded, and links to folders are never followed"
	case utf8.RuneCountInString(name) > maxSegmentName:
		return fmt.Sprintf("name is longer than the %d characters Azure allows in one part of a blob name", maxSegmentName)
	case mode.IsDir() && depth+1 > MaxDepth:
		return fmt.Sprintf("folder deeper than %d levels below the session folder: not entered", MaxDepth)
	case mode.IsDir():
		return ""
	case !mode.IsRegular():
		return "not a regular file (FIFO, socket or device)"
	case w.prefixRunes+utf8.RuneCountInString(relName) > maxBlobName: // the blob name, without building it
		return fmt.Sprintf("blob name would be longer than the %d characters Azure allows", maxBlobName)
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

// lstatAt is lstat(2) of name in the folder open as dirfd.
func lstatAt(dirfd int, name string, st *unix.Stat_t) error {
	for {
		err := unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}
