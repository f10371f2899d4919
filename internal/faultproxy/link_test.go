package faultproxy

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Two bodies sent at once share one capped link: together they take as long
// as their sum at the rate, and arrive intact.
func TestRateSharesOneLink(t *testing.T) {
	var mu sync.Mutex
	got := map[string][32]byte{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got[r.URL.Path] = sha256.Sum256(b)
		mu.Unlock()
	}))
	defer up.Close()
	p, err := Start(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	const rate, size = 1 << 20, 256 << 10 // 1 MiB/s, 2 × 256 KiB: 0.5 s of link time
	p.SetRate(rate)
	bodies := map[string][]byte{"/a": bytes.Repeat([]byte("a"), size), "/b": bytes.Repeat([]byte("b"), size)}
	start := time.Now()
	var wg sync.WaitGroup
	for path, body := range bodies {
		wg.Go(func() {
			resp, err := http.Post(p.URL()+path, "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d", path, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	want := time.Duration(2 * size * int64(time.Second) / rate)
	t.Logf("2 × %d KiB at %d KiB/s took %v (link time %v)", size>>10, rate>>10, took, want)
	if took < want*9/10 {
		t.Fatalf("took %v, faster than the %v the link allows", took, want)
	}
	if took > want*4 {
		t.Fatalf("took %v, far slower than the link's %v", took, want)
	}
	for path, body := range bodies {
		if got[path] != sha256.Sum256(body) {
			t.Fatalf("%s arrived changed", path)
		}
	}
}
