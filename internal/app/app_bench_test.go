package app

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/azurite"
	"golang.org/x/sys/unix"
)

// uploadCounter is the service's stdout: it counts "file uploaded" lines
// (slog writes one line per Write) and closes reached once want are in.
type uploadCounter struct {
	mu      sync.Mutex
	n       int
	want    int
	reached chan struct{}
}

var uploadedMsg = []byte(`"msg":"file uploaded"`)

func (c *uploadCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += bytes.Count(p, uploadedMsg)
	if c.reached != nil && c.n >= c.want {
		close(c.reached)
		c.reached = nil
	}
	return len(p), nil
}

// expect returns a channel closed once n more files are uploaded.
func (c *uploadCounter) expect(n int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	c.want, c.reached = c.n+n, ch
	return ch
}

func cpuSeconds() float64 { return rusage(syscall.RUSAGE_SELF) }

// rusage is the CPU seconds of the process (RUSAGE_SELF) or of the
// calling thread (RUSAGE_THREAD).
func rusage(who int) float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(who, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// BenchmarkSmallFiles runs the whole service in this process with
// cmd/bench's settings (default workers, 0.5 s polls, 1 s minimum age) and, per
// iteration, hard-links 2,000 files of 4 KiB into a new session and waits
// for every "file uploaded" line. It reports the process's CPU per file,
// which is what cmd/bench's CPU s/GB counts for small files; run it with
// -cpuprofile to see where that goes.
func BenchmarkSmallFiles(b *testing.B) { benchFiles(b, 2000, 4<<10, "copy") }

// BenchmarkDirect1MiB is the same with 200 files of 1 MiB in direct
// staging mode.
func BenchmarkDirect1MiB(b *testing.B) { benchFiles(b, 200, 1<<20, "direct") }

func benchFiles(b *testing.B, files, size int, staging string) {
	az, err := azurite.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(az.Stop)
	src := b.TempDir()
	data := make([]byte, size)
	for i := range files {
		for j := range data {
			data[j] = byte(i*31 + j*7)
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f-%05d.bin", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	root := b.TempDir()
	port, err := azurite.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := map[string]string{
		"APP_AZURE_AUTH":              "connection-string",
		"APP_AZURE_CONNECTION_STRING": az.ConnectionString(az.BlobEndpoint()),
		"APP_AZURE_CONTAINER":         "bench",
		"APP_NFS_INCOMING_DIR":        filepath.Join(root, "nfs", "incoming"),
		"APP_NFS_PROCESSING_ROOT":     filepath.Join(root, "nfs", ".processing"),
		"APP_LOCAL_STAGING_ROOT":      filepath.Join(root, "staging"),
		"APP_HTTP_ADDR":               addr,
		"APP_POLL_INTERVAL_S":         "0.5",
		"APP_MIN_FILE_AGE_S":          "1",
		"APP_MAX_QUEUE_SIZE":          "10000",
		"APP_STAGING_MODE":            staging,
	}
	getenv := func(k string) string { return env[k] }
	logs := &uploadCounter{}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- Run(ctx, nil, getenv, logs, logs) }()
	b.Cleanup(func() {
		cancel()
		<-runErr
	})
	api := apiClient{base: "http://" + addr, hc: &http.Client{Timeout: 10 * time.Second}}
	ready := time.Now().Add(60 * time.Second)
	for {
		if code, _, _ := api.call("GET", "/readyz", ""); code == http.StatusOK {
			break
		}
		if time.Now().After(ready) {
			b.Fatal("service not ready after 60 s")
		}
		select {
		case err := <-runErr:
			runErr <- err // for the clean-up's wait
			b.Fatalf("Run returned during start-up: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	names, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	var cpu float64
	n := 0
	b.ResetTimer()
	for b.Loop() {
		n++
		code, started, err := api.call("POST", "/v1/watch/start", fmt.Sprintf(`{"session":"bench-%d"}`, n))
		if err != nil || code != http.StatusCreated {
			b.Fatalf("start session: %d %v %v", code, started, err)
		}
		in, _ := started["incoming_dir"].(string)
		done := logs.expect(files)
		cpu0 := cpuSeconds()
		// The links are the producer's work, not the service's: their
		// CPU (on this goroutine's own thread) is taken off.
		runtime.LockOSThread()
		link0 := rusage(unix.RUSAGE_THREAD)
		for _, e := range names {
			if err := os.Link(filepath.Join(src, e.Name()), filepath.Join(in, e.Name())); err != nil {
				b.Fatal(err)
			}
		}
		cpu0 += rusage(unix.RUSAGE_THREAD) - link0
		runtime.UnlockOSThread()
		select {
		case <-done:
		case <-time.After(10 * time.Minute):
			b.Fatal("files not uploaded after 10 minutes")
		}
		cpu += cpuSeconds() - cpu0
		if code, _, err := api.call("POST", "/v1/watch/stop", ""); err != nil || code != http.StatusOK {
			b.Fatalf("stop session: %d %v", code, err)
		}
	}
	b.ReportMetric(cpu/float64(n*files)*1e6, "cpu-µs/file")
	b.ReportMetric(cpu/(float64(n*files*size)/1e9), "cpu-s/GB")
}
