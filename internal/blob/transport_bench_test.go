package blob

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkTransport4KiB is one PUT of 4 KiB over a kept-alive loopback
// connection, through the bare transport and through the layers Open puts
// in front of it (stall watchdog, bandwidth pacing with no limit set): the
// per-request cost those layers add to every small file.
func BenchmarkTransport4KiB(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	body := make([]byte, 4<<10)
	for _, c := range []struct {
		name string
		wrap func(http.RoundTripper) http.RoundTripper
	}{
		{"bare", func(t http.RoundTripper) http.RoundTripper { return t }},
		{"layers", func(t http.RoundTripper) http.RoundTripper {
			return failFastTLS{withStallLimit(withBandwidth(t, NewBandwidth()), time.Minute)}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: c.wrap(tr)}
			b.ReportAllocs()
			for b.Loop() {
				// A body net/http does not know, as the SDK's request
				// bodies are: headers and body go in separate writes.
				req, err := http.NewRequest(http.MethodPut, srv.URL, nil)
				if err != nil {
					b.Fatal(err)
				}
				req.Body = io.NopCloser(io.NewSectionReader(bytes.NewReader(body), 0, int64(len(body))))
				req.ContentLength = int64(len(body))
				resp, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
