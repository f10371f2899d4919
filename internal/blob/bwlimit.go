package blob

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Bandwidth caps the request bodies of every upload together, changeable
// while they run. The zero value is not usable; NewBandwidth limits nothing.
type Bandwidth struct {
	mu  sync.Mutex
	lim *rate.Limiter // never set to rate.Inf: off is kept in bps instead
	bps int64         // 0: no limit
}

// NewBandwidth returns an unlimited Bandwidth.
func NewBandwidth() *Bandwidth { return &Bandwidth{lim: rate.NewLimiter(1, 1)} }

// maxBurst bounds what the bucket may hold: 64 KiB, or 100 ms of the rate
// when that is less, so a link idle for a while gets no burst of seconds.
const maxBurst = 64 << 10

func burstFor(bps int64) int { return int(max(1, min(bps/10, maxBurst))) }

// SetLimit sets the shared rate in bytes per second; 0 or less lifts it.
func (b *Bandwidth) SetLimit(bps int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bps = max(bps, 0)
	if b.bps == 0 {
		return
	}
	now := time.Now()
	b.lim.SetLimitAt(now, rate.Limit(b.bps))
	b.lim.SetBurstAt(now, burstFor(b.bps))
}

// Limit is the rate in force in bytes per second; 0 for none.
func (b *Bandwidth) Limit() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bps
}

// waitTick is how often a body waiting for bandwidth tells the stall
// watchdog that it is still moving.
const waitTick = 250 * time.Millisecond

// wait blocks until n bytes may be sent, honouring ctx. Every waitTick of
// waiting counts as progress: the body is read only when the connection
// took the previous bytes, so time spent here is the limit at work, not a
// silent peer.
func (b *Bandwidth) wait(ctx context.Context, n int, progress func()) error {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for n > 0 {
		b.mu.Lock()
		if b.bps == 0 {
			b.mu.Unlock()
			return nil
		}
		k := min(n, b.lim.Burst())
		r := b.lim.ReserveN(time.Now(), k)
		b.mu.Unlock()
		if !r.OK() { // k is within the burst read under the same lock
			return errors.New("bandwidth: reservation refused")
		}
		until := time.Now().Add(r.Delay())
		for d := time.Until(until); d > 0; d = time.Until(until) {
			step := min(d, waitTick)
			if t == nil {
				t = time.NewTimer(step)
			} else {
				t.Reset(step)
			}
			select {
			case <-ctx.Done():
				r.Cancel()
				return context.Cause(ctx)
			case <-t.C:
				progress()
			}
		}
		n -= k
	}
	return nil
}

// bandwidthTransport paces request bodies through a shared Bandwidth. It
// sits inside the stall watchdog, whose progress hook it finds in the
// request's context.
type bandwidthTransport struct {
	next http.RoundTripper
	bw   *Bandwidth
}

// withBandwidth wraps next; a nil bw leaves it unlimited.
func withBandwidth(next http.RoundTripper, bw *Bandwidth) http.RoundTripper {
	if bw == nil {
		return next
	}
	return &bandwidthTransport{next: next, bw: bw}
}

func (t *bandwidthTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody || smallBody(req) && t.bw.Limit() == 0 {
		// A small body starts whole or not at all: a limit set while it is
		// sent would pace none of it.
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	progress := progressHook(ctx)
	r := req.WithContext(ctx) // a shallow copy: RoundTrippers must not change req
	r.Body = &pacedBody{ReadCloser: req.Body, bw: t.bw, ctx: ctx, progress: progress}
	if req.GetBody != nil {
		r.GetBody = func() (io.ReadCloser, error) {
			b, err := req.GetBody()
			if err != nil || b == nil || b == http.NoBody {
				return b, err
			}
			return &pacedBody{ReadCloser: b, bw: t.bw, ctx: ctx, progress: progress}, nil
		}
	}
	return t.next.RoundTrip(r)
}

// pacedBody hands out bytes no faster than the shared rate allows. Reads
// are capped at the burst so concurrent uploads interleave smoothly.
type pacedBody struct {
	io.ReadCloser
	bw       *Bandwidth
	ctx      context.Context
	progress func()
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if lim := b.bw.Limit(); lim > 0 {
		p = p[:min(len(p), burstFor(lim))]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if werr := b.bw.wait(b.ctx, n, b.progress); werr != nil {
			return 0, werr
		}
	}
	return n, err
}

type progressKey struct{}

// withProgress lets layers inside the stall watchdog report progress.
func withProgress(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, progressKey{}, f)
}

func progressHook(ctx context.Context) func() {
	if f, ok := ctx.Value(progressKey{}).(func()); ok {
		return f
	}
	return func() {}
}
