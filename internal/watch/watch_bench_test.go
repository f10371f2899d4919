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

func (c *countSink) Pending(string) bool { return false }
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
