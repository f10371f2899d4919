package blob

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
	"github.com/edge/nfs-watcher-uploader/internal/object"
)

// openLimited opens a Store on endpoint whose tries end after limit without
// progress.
func openLimited(t *testing.T, endpoint string, limit time.Duration) (*Store, error) {
	t.Helper()
	o := Options{Container: strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), TryTimeout: limit}
	s, err := Open(context.Background(), Credentials{Mode: "connection-string", ConnectionString: az.ConnectionString(endpoint), AuthTimeout: time.Minute}, o)
	if err == nil {
		t.Cleanup(s.Close)
	}
	return s, err
}

// A single Put Blob that takes many times the try timeout on a slow link
// completes in one try: only a stall ends a try, not its length.
func TestSlowPutOutlastsTryTimeout(t *testing.T) {
	p, err := faultproxy.Start(az.BlobEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const limit = time.Second
	s, err := openLimited(t, p.URL()+"/devstoreaccount1", limit)
	if err != nil {
		t.Fatal(err)
	}
	var puts atomic.Int64
	p.SetRule(func(r *http.Request) faultproxy.Action {
		if r.Method == http.MethodPut {
			puts.Add(1)
		}
		return faultproxy.Pass
	})
	// 5 MB at 1 MiB/s: about 5 s on the link, five times the limit.
	p.SetRate(1 << 20)
	data := bytes.Repeat([]byte("slow link "), 500<<10)
	sum := crcOf(data)
	start := time.Now()
	confirmed, err := s.Put(context.Background(), object.Object{Name: "slow.bin", Src: bytes.NewReader(data), Size: int64(len(data)), CRC64: sum})
	took := time.Since(start)
	t.Logf("%d bytes at 1 MiB/s with a %v stall limit: %v, %d PUT(s)", len(data), limit, took, puts.Load())
	if err != nil || !confirmed {
		t.Fatalf("slow put: confirmed %v, %v", confirmed, err)
	}
	if took < 4*limit {
		t.Fatalf("the put took %v: the link was not slow enough to outlast the %v limit", took, limit)
	}
	if n := puts.Load(); n != 1 {
		t.Fatalf("%d PUTs: a try was abandoned and sent again", n)
	}
	p.SetRate(0)
	if err := s.Verify(context.Background(), "slow.bin", int64(len(data)), sum); err != nil {
		t.Fatal(err)
	}
}

// hungListener accepts connections and never answers; it counts them.
func hungListener(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int64{}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

// A peer that accepts and never answers fails the request after the stall
// limit, with an error that says it stalled.
func TestSilentPeerStalls(t *testing.T) {
	addr, _ := hungListener(t)
	const limit = 300 * time.Millisecond
	c := &http.Client{Transport: withStallLimit(http.DefaultTransport.(*http.Transport).Clone(), limit)}
	start := time.Now()
	resp, err := c.Get("http://" + addr + "/")
	took := time.Since(start)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a silent peer answered")
	}
	t.Logf("failed after %v: %v", took, err)
	var se *StallError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "no progress for 0.3s") {
		t.Fatalf("error %q does not say the request stalled", err)
	}
	if took < limit {
		t.Fatalf("failed after %v, before the %v limit", took, limit)
	}
}

// Through the SDK, each stalled try is retried and the final error still
// names the stall.
func TestOpenRetriesStalledTries(t *testing.T) {
	addr, accepted := hungListener(t)
	_, err := openLimited(t, "http://"+addr+"/devstoreaccount1", 200*time.Millisecond)
	if err == nil {
		t.Fatal("opened a store on a silent peer")
	}
	t.Logf("%d connections: %v", accepted.Load(), err)
	if !strings.Contains(err.Error(), "no progress for 0.2s") {
		t.Fatalf("error %q does not say the tries stalled", err)
	}
	if n := accepted.Load(); n != 4 {
		t.Fatalf("%d tries, want the SDK's 4", n)
	}
}
