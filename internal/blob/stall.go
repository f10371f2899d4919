package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// StallError ends a try during which no byte moved for Limit.
type StallError struct{ Limit time.Duration }

func (e *StallError) Error() string {
	return "stalled: no progress for " + strconv.FormatFloat(e.Limit.Seconds(), 'f', -1, 64) + "s"
}

// stallTransport ends a try only when it stops moving bytes, never because
// it is long: a 256 MiB Put Blob on a slow link takes as long as it takes,
// while a peer that accepts and goes silent is still given up on.
type stallTransport struct {
	next  http.RoundTripper
	limit time.Duration
}

// withStallLimit wraps next; a limit of zero or less leaves it unbounded.
func withStallLimit(next http.RoundTripper, limit time.Duration) http.RoundTripper {
	if limit <= 0 {
		return next
	}
	return &stallTransport{next: next, limit: limit}
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	w := watch(t.limit, cancel)
	progress := w.progress // one closure for the three hooks
	w.trace = httptrace.ClientTrace{
		GotConn:              func(i httptrace.GotConnInfo) { w.setConn(i.Conn) },
		WroteHeaders:         progress,
		GotFirstResponseByte: progress,
	}
	ctx = httptrace.WithClientTrace(ctx, &w.trace)
	ctx = withProgress(ctx, progress) // bandwidth waits count as progress
	r := req.WithContext(ctx)
	// A small body goes whole right after the headers, which count as
	// progress; the connection's byte counter follows it from there.
	if req.Body != nil && req.Body != http.NoBody && !smallBody(req) {
		r.Body = &progressBody{ReadCloser: req.Body, w: w}
		if req.GetBody != nil {
			r.GetBody = func() (io.ReadCloser, error) {
				b, err := req.GetBody()
				if err != nil || b == nil || b == http.NoBody {
					return b, err
				}
				return &progressBody{ReadCloser: b, w: w}, nil
			}
		}
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		w.stop()
		err = stallCause(ctx, err)
		cancel(err)
		return nil, err
	}
	resp.Body = &progressBody{ReadCloser: resp.Body, w: w, response: true, ctx: ctx, cancel: cancel}
	return resp, nil
}

// smallBodyMax is the largest request body that needs no wrapping to be
// watched or paced: it is read in one go, and is no more than the
// bandwidth limit's largest burst.
const smallBodyMax = maxBurst

func smallBody(req *http.Request) bool {
	return req.ContentLength > 0 && req.ContentLength <= smallBodyMax
}

// stallCause names the stall when the watchdog ended the request, instead
// of a bare "context canceled".
func stallCause(ctx context.Context, err error) error {
	var se *StallError
	if errors.As(context.Cause(ctx), &se) && !errors.As(err, &se) {
		return fmt.Errorf("%w (%v)", se, err)
	}
	return err
}

// progressBody records every read as progress. On a response it also stops
// the watchdog when the body ends or is closed.
type progressBody struct {
	io.ReadCloser
	w        *watchdog
	response bool
	ctx      context.Context
	cancel   context.CancelCauseFunc
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.progress()
	}
	if err != nil && b.response {
		b.w.stop()
		if err != io.EOF {
			err = stallCause(b.ctx, err)
		}
	}
	return n, err
}

func (b *progressBody) Close() error {
	err := b.ReadCloser.Close()
	if b.response {
		b.w.stop()
		b.cancel(nil)
	}
	return err
}

// watchdog cancels a request once nothing has moved for limit. Reads only
// store a timestamp; a timer checks it every limit/4, so the stall is seen
// between limit and 1.25 × limit after the last byte.
type watchdog struct {
	limit  time.Duration
	start  time.Time
	last   atomic.Int64 // nanoseconds since start of the latest progress
	conn   atomic.Pointer[net.Conn]
	cancel context.CancelCauseFunc
	trace  httptrace.ClientTrace // the request's hooks, allocated with it

	mu    sync.Mutex
	timer *time.Timer
	done  bool
	moved uint64 // the connection's byte counter at the previous check (0 before the first)
}

func watch(limit time.Duration, cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{limit: limit, start: time.Now(), cancel: cancel}
	w.mu.Lock()
	w.timer = time.AfterFunc(w.tick(), w.check)
	w.mu.Unlock()
	return w
}

func (w *watchdog) tick() time.Duration { return max(w.limit/4, time.Millisecond) }

func (w *watchdog) progress() { w.last.Store(int64(time.Since(w.start))) }

// setConn notes the request's connection. Its byte counter is first read
// at the first check, not here: most requests end before any check, and
// the read is a system call. Against a counter of 0 that first read counts
// as progress, which can only put a stall off by one tick, keeping it
// within limit to 1.25 × limit after the last byte.
func (w *watchdog) setConn(c net.Conn) {
	w.conn.Store(&c)
	w.progress()
}

func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	// The kernel's count of bytes the peer acknowledged or sent: the body
	// is read into socket buffers long before it crosses a slow link, so
	// reads alone would call the drain of a full send buffer a stall.
	if c := w.conn.Load(); c != nil {
		if n, ok := connBytes(*c); ok && n != w.moved {
			w.moved = n
			w.progress()
		}
	}
	if idle := time.Since(w.start) - time.Duration(w.last.Load()); idle >= w.limit {
		w.done = true
		w.cancel(&StallError{Limit: w.limit})
		return
	}
	w.timer.Reset(w.tick())
}

func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.timer.Stop()
}
