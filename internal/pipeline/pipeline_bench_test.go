package pipeline

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func benchPipeline(b testing.TB) (*Pipeline, Layout) {
	b.Helper()
	root := b.TempDir()
	l := Layout{Incoming: filepath.Join(root, "in"), Processing: filepath.Join(root, "proc"), Staging: filepath.Join(root, "stage")}
	for _, d := range []string{l.IncomingDir("s"), l.ProcessingDir("20260101", "s"), l.StagingDir("20260101", "s")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	return New(Options{Layout: l}, nil, NewStats(nil), slog.New(slog.NewTextHandler(io.Discard, nil))), l
}

// BenchmarkClaimComplete is the NFS metadata work of one file: the claim
// (rename into .processing, never replacing) and the completion (the
// unchanged check, rename into .done and the check after it). File
// creation is not timed.
func BenchmarkClaimComplete(b *testing.B) {
	p, l := benchPipeline(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		it := &Item{Session: "s", Date: "20260101", Name: fmt.Sprintf("f%d", i)}
		if err := os.WriteFile(filepath.Join(l.IncomingDir("s"), it.Name), nil, 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := p.claim(ctx, it); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		fi, err := os.Stat(p.processingPath(it))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := p.complete(ctx, it, &source{sig: SigOf(fi)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageCopy is the staging copy of a 64 MiB file with its CRC64s.
func BenchmarkStageCopy(b *testing.B) {
	_, l := benchPipeline(b)
	src := filepath.Join(l.ProcessingDir("20260101", "s"), "big")
	data := make([]byte, 64<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		b.Fatal(err)
	}
	dst := filepath.Join(l.StagingDir("20260101", "s"), "big")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		fd, before, err := openSource(src)
		if err != nil {
			b.Fatal(err)
		}
		in := os.NewFile(uintptr(fd), src)
		s, err := copyHashed(in, before, src, dst, 4<<20)
		in.Close()
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
