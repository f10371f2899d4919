package blob

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// countingConn counts the writes made on a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// opaqueBody is a body net/http cannot tell is in memory, as the SDK's is.
type opaqueBody struct{ io.Reader }

func (opaqueBody) Close() error { return nil }

// A small body leaves with its headers in one write, and arrives whole; a
// large one is sent as before.
func TestSmallBodyLeavesWithItsHeaders(t *testing.T) {
	var got atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(&b)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	put := func(rt func(*http.Transport) http.RoundTripper, size int) int64 {
		t.Helper()
		var writes atomic.Int64
		tr := &http.Transport{WriteBufferSize: writeBuffer, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			return countingConn{c, &writes}, err
		}}
		defer tr.CloseIdleConnections()
		body := bytes.Repeat([]byte{7}, size)
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/c/f.bin", opaqueBody{bytes.NewReader(body)})
		req.ContentLength = int64(size)
		resp, err := rt(tr).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if b := got.Load(); b == nil || !bytes.Equal(*b, body) {
			t.Fatalf("%d bytes sent, the server got other bytes", size)
		}
		return writes.Load()
	}
	whole := func(tr *http.Transport) http.RoundTripper { return wholeSmallBodies{tr} }
	plain := func(tr *http.Transport) http.RoundTripper { return tr }
	if n := put(whole, 4<<10); n != 1 {
		t.Errorf("4 KiB body: %d writes, want 1", n)
	}
	if n := put(plain, 4<<10); n != 2 {
		t.Errorf("without wholeSmallBodies, 4 KiB body: %d writes; net/http no longer flushes headers first, and this layer is not needed", n)
	}
	if n := put(whole, smallBodyMax+1); n < 2 {
		t.Errorf("large body: %d writes, want it streamed after the headers", n)
	}
}
