package blob

import (
	"bytes"
	"io"
	"net/http"
)

// wholeSmallBodies hands net/http a small request body as bytes. For a
// body it cannot tell is in memory, net/http sends the headers in a write
// of their own before the body; for bytes it sends both in one. A small
// file then costs one write and one packet instead of two, on the link and
// at the service's end alike (with a write buffer that holds both:
// writeBuffer).
type wholeSmallBodies struct{ next http.RoundTripper }

// writeBuffer holds a small body and its headers.
const writeBuffer = smallBodyMax + 4<<10

func (t wholeSmallBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	if !smallBody(req) || req.Body == nil || req.Body == http.NoBody {
		return t.next.RoundTrip(req)
	}
	// Not pooled: net/http may still read the body after RoundTrip returns
	// (a server that answers before taking it all).
	buf := make([]byte, req.ContentLength)
	_, err := io.ReadFull(req.Body, buf)
	req.Body.Close() // a RoundTripper closes the body it was given
	if err != nil {
		return nil, err
	}
	r := req.WithContext(req.Context()) // a shallow copy: req is not ours to change
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return t.next.RoundTrip(r)
}
