package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
	"github.com/edge/nfs-watcher-uploader/internal/object"
)

// putAll uploads n blobs of size bytes at once and returns how long it took.
func putAll(t *testing.T, s *Store, n, size int) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte('a' + i)}, size)
			sum := crcOf(data)
			ok, err := s.Put(context.Background(), object.Object{Name: fmt.Sprintf("b%d.bin", i), Src: bytes.NewReader(data), Size: int64(size), CRC64: sum})
			if err == nil && !ok {
				err = errors.New("not confirmed")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(start)
}

// At L bytes/s shared by all uploads, N bytes never go in less than about
// N/L: only the bucket's small burst may go ahead of the rate.
func TestBandwidthBoundsAllUploadsTogether(t *testing.T) {
	bw := NewBandwidth()
	const limit = 256 << 10
	bw.SetLimit(limit)
	s := open(t, "", Options{Bandwidth: bw})
	const n, size = 4, 192 << 10
	took := putAll(t, s, n, size)
	floor := time.Duration(float64(n*size-burstFor(limit)) / limit * float64(time.Second))
	t.Logf("%d × %d bytes at %d B/s: %v (floor %v)", n, size, limit, took, floor)
	if took < floor {
		t.Fatalf("%d bytes went in %v at a limit of %d B/s; at least %v expected", n*size, took, limit, floor)
	}

	// Lifted: the same bytes go at loopback speed.
	bw.SetLimit(0)
	if took := putAll(t, s, n, size); took >= floor {
		t.Logf("unlimited run took %v (a busy machine); not asserted", took)
	}
}

// Waiting for bandwidth is not a stall: eight uploads sharing a tight limit
// each wait far longer than the try timeout between their reads, and every
// one still completes in its first try.
func TestBandwidthWaitIsNotAStall(t *testing.T) {
	p, err := faultproxy.Start(az.BlobEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var puts atomic.Int64
	p.SetRule(func(r *http.Request) faultproxy.Action {
		if r.Method == http.MethodPut && r.ContentLength > 0 {
			puts.Add(1)
		}
		return faultproxy.Pass
	})
	bw := NewBandwidth()
	bw.SetLimit(256 << 10) // 25.6 KiB per read: each of 8 streams waits ~0.8 s per read
	const stallLimit = 300 * time.Millisecond
	o := Options{Container: strings.ToLower(t.Name()), TryTimeout: stallLimit, Bandwidth: bw}
	s, err := Open(context.Background(), Credentials{Mode: "connection-string", ConnectionString: az.ConnectionString(p.URL() + "/devstoreaccount1"), AuthTimeout: time.Minute}, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n, size = 8, 64 << 10
	took := putAll(t, s, n, size)
	t.Logf("%d uploads in %v with a %v stall limit, %d PUTs", n, took, stallLimit, puts.Load())
	if took < 4*stallLimit {
		t.Fatalf("took only %v: the limit was not tight enough to test the watchdog", took)
	}
	if got := puts.Load(); got != n {
		t.Fatalf("%d PUTs for %d blobs: a bandwidth wait was taken for a stall and the try sent again", got, n)
	}
}

// A body waiting for bandwidth gives up as soon as its request is
// cancelled, not when the bytes would have been allowed.
func TestBandwidthWaitHonoursContext(t *testing.T) {
	bw := NewBandwidth()
	bw.SetLimit(1 << 10) // 10,000 bytes: ~10 s
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("request cancelled")
	time.AfterFunc(100*time.Millisecond, func() { cancel(cause) })
	start := time.Now()
	var ticks atomic.Int64
	err := bw.wait(ctx, 10000, func() { ticks.Add(1) })
	if !errors.Is(err, cause) {
		t.Fatalf("wait returned %v, want the context's cause", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("wait returned %v after cancel", took)
	}
}

// A limit set to 0 lifts it: nothing waits.
func TestBandwidthOffWaitsForNothing(t *testing.T) {
	bw := NewBandwidth()
	bw.SetLimit(100)
	bw.SetLimit(0)
	if bw.Limit() != 0 {
		t.Fatalf("limit %d after lifting", bw.Limit())
	}
	if err := bw.wait(context.Background(), 1<<30, func() {}); err != nil {
		t.Fatal(err)
	}
}
