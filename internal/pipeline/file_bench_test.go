package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/object"
	"github.com/edge/nfs-watcher-uploader/internal/pipeline"
	"github.com/edge/nfs-watcher-uploader/internal/telemetry"
)

// readStore takes every body whole and confirms it: the pipeline's own
// cost of a file, without Azure's.
type readStore struct{}

func (readStore) BlockSize(int64) int64 { return 0 }
func (readStore) Put(_ context.Context, o object.Object) (bool, error) {
	_, err := io.Copy(io.Discard, io.NewSectionReader(o.Src, 0, o.Size))
	return true, err
}
func (readStore) Verify(context.Context, string, int64, uint64) error { return nil }

// doneObserver passes every count on and closes all once want files are
// processed.
type doneObserver struct {
	pipeline.Observer
	n, want atomic.Int64
	all     chan struct{}
}

func (o *doneObserver) FileProcessed(ctx context.Context, session string, size int64, upload, latency time.Duration) {
	o.Observer.FileProcessed(ctx, session, size, upload, latency)
	if o.n.Add(1) == o.want.Load() {
		close(o.all)
	}
}

func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkFile4KiB is everything the service does for one 4 KiB file
// once the watcher offers it, except the HTTP request: the claim, the copy
// into memory with its checksums, the completion with its checks, the
// spans, metrics, status counts and the "file uploaded" log line (to a
// file, as stdout is in the benchmark), with the service's telemetry and 4
// workers. One op is one file; cpu-ns/file is the process's CPU.
func BenchmarkFile4KiB(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := b.TempDir()
	logf, err := os.Create(filepath.Join(root, "service.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	tel, err := telemetry.Setup(ctx, func(string) string { return "" }, logf, telemetry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	l := pipeline.Layout{Incoming: filepath.Join(root, "in"), Processing: filepath.Join(root, "proc"), Staging: filepath.Join(root, "stage")}
	const date, session = "20260101", "bench"
	for _, d := range []string{l.IncomingDir(session), l.ProcessingDir(date, session), l.StagingDir(date, session)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	obs := &doneObserver{Observer: tel.Observer, all: make(chan struct{})}
	obs.want.Store(int64(b.N))
	stats := pipeline.NewStats(obs)
	p := pipeline.New(pipeline.Options{Layout: l, Workers: 4, QueueSize: b.N + 1}, readStore{}, stats, tel.Logger)
	data := make([]byte, 4<<10)
	items := make([]*pipeline.Item, b.N)
	for i := range items {
		name := fmt.Sprintf("f-%07d.bin", i)
		data[0], data[1] = byte(i), byte(i>>8)
		if err := os.WriteFile(filepath.Join(l.IncomingDir(session), name), data, 0o644); err != nil {
			b.Fatal(err)
		}
		items[i] = &pipeline.Item{Session: session, Date: date, Name: name}
	}
	go p.Run(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuNanos()
	now := time.Now()
	for _, it := range items {
		it.Found = now
		if !p.Offer(ctx, it) {
			b.Fatal("offer refused")
		}
	}
	<-obs.all
	cpu := cpuNanos() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/file")
	if c := stats.Snapshot(); c.FilesFailed != 0 || c.LastError != nil {
		b.Fatalf("failures: %+v", c.LastError)
	}
}
