package watch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/pipeline"
)

// countSink accepts every offer and remembers nothing: the benchmark
// measures the watcher alone.
type countSink struct{ offered int }

func (c *countSink) Pending(_, _, _ string) bool { return false }
func (c *countSink) Offer(context.Context, *pipeline.Item) bool {
	c.offered++
	return true
}

func folderOf(b *testing.B, n int) string {
	b.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("nwu-scan-%d", n))
	if fi, err := os.ReadDir(dir); err == nil && len(fi) == n {
		return dir // reused between runs: creating 100,000 files takes seconds
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	// Recent mtimes: every file is pending (seen, not yet old enough), the
	// state a poll of a busy folder holds between scans.
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("capture-%06d.bin", i)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkScan100k is one poll of a folder of 100,000 files; it reports
// the time per poll and the bytes the watcher keeps per pending entry.
func BenchmarkScan100k(b *testing.B) {
	const n = 100_000
	dir := folderOf(b, n)
	w := &Watcher{
		Dir: dir, Session: "bench", Date: "20260101", MinAge: time.Hour, Poll: time.Second,
		Sink: &countSink{}, Stats: pipeline.NewStats(nil), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := w.ScanOnce(ctx); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	retained := float64(after.HeapAlloc-before.HeapAlloc) / n
	b.ResetTimer()
	b.ReportAllocs()
	for b.Loop() {
		if err := w.ScanOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(retained, "retained-B/entry")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/poll")
}

// BenchmarkScanNested100k is one poll of 100,000 files spread over 1,000
// folders (100 each), the layout of cameras writing a folder per hour.
func BenchmarkScanNested100k(b *testing.B) {
	const folders, per = 1000, 100
	dir := filepath.Join(os.TempDir(), "nwu-scan-nested")
	if fi, err := os.ReadDir(dir); err != nil || len(fi) != folders {
		_ = os.RemoveAll(dir)
		for f := range folders {
			sub := filepath.Join(dir, fmt.Sprintf("cam-%d", f%10), fmt.Sprintf("hour-%03d", f))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				b.Fatal(err)
			}
			for i := range per {
				if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("frame-%03d.jpg", i)), nil, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	w := &Watcher{
		Dir: dir, Session: "bench", Date: "20260101", MinAge: time.Hour, Poll: time.Second,
		Sink: &countSink{}, Stats: pipeline.NewStats(nil), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx := context.Background()
	if err := w.ScanOnce(ctx); err != nil {
		b.Fatal(err)
	}
	if len(w.prev) != folders*per {
		b.Fatalf("scan saw %d files, want %d", len(w.prev), folders*per)
	}
	b.ResetTimer()
	b.ReportAllocs()
	for b.Loop() {
		if err := w.ScanOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/poll")
}

// queuedSink has every file already queued.
type queuedSink struct{}

func (queuedSink) Pending(_, _, _ string) bool                { return true }
func (queuedSink) Offer(context.Context, *pipeline.Item) bool { return false }

// BenchmarkScanQueued2k is one poll of a folder of 2,000 files that are
// all queued already, waiting for a worker: the state of most polls while
// a burst of small files is uploaded. Allocations are per poll.
func BenchmarkScanQueued2k(b *testing.B) {
	const n = 2000
	dir := folderOf(b, n)
	w := &Watcher{
		Dir: dir, Session: "bench", Date: "20260101", MinAge: time.Hour, Poll: time.Second,
		Sink: queuedSink{}, Stats: pipeline.NewStats(nil), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := w.ScanOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
}
