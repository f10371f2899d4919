package watch

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/pipeline"
)

// offers records what the watcher offered.
type offers struct{ names []string }

func (o *offers) Pending(_, _, _ string) bool { return false }
func (o *offers) Offer(_ context.Context, it *pipeline.Item) bool {
	o.names = append(o.names, it.Name)
	return true
}

// TestFileIsTakenOnlyAfterMinAgeUnchanged drives the watcher's clock by
// hand: a file is offered once MinAge has passed without a change, and a
// change at any time in between, seen or not by a poll, starts the wait
// again. Between its first poll and MinAge a file is not stat'ed, so this
// checks that the skipped polls lose no change.
func TestFileIsTakenOnlyAfterMinAgeUnchanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.bin")
	write := func(s string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		// A writer that restores mtime still moves ctime and, here, size.
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write("one", mtime)

	clock := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	sink := &offers{}
	w := &Watcher{
		Dir: dir, Session: "s", Date: "20261128", MinAge: 5 * time.Second, Poll: time.Second,
		Sink: sink, Stats: pipeline.NewStats(nil), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		now: func() time.Time { return clock },
	}
	poll := func(after time.Duration) []string {
		t.Helper()
		clock = clock.Add(after)
		sink.names = nil
		if err := w.ScanOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		return sink.names
	}

	if got := poll(0); len(got) != 0 {
		t.Fatalf("offered at first sight: %v", got)
	}
	// Changed at 2 s with its old mtime kept, unseen until MinAge is up.
	poll(time.Second)
	write("one plus", mtime)
	for range 3 {
		if got := poll(time.Second); len(got) != 0 {
			t.Fatalf("offered before MinAge: %v", got)
		}
	}
	if got := poll(time.Second); len(got) != 0 {
		t.Fatalf("offered at MinAge although it changed in between: %v", got)
	}
	// Seen changing, it is watched every poll: a change the next second
	// starts the wait again.
	if got := poll(time.Second); len(got) != 0 {
		t.Fatalf("offered one second after a change: %v", got)
	}
	write("one plus two", mtime)
	if got := poll(time.Second); len(got) != 0 {
		t.Fatalf("offered as it changed: %v", got)
	}
	for range 4 {
		if got := poll(time.Second); len(got) != 0 {
			t.Fatalf("offered before MinAge after its last change: %v", got)
		}
	}
	if got := poll(time.Second); len(got) != 1 || got[0] != "a.bin" {
		t.Fatalf("not offered MinAge after its last change: %v", got)
	}
}
