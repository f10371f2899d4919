package faultproxy

import (
	"io"
	"sync"
	"time"
)

// link is one shared uplink: every request body forwarded through the proxy
// queues for the same bytes-per-second budget, as files sharing a slow
// site uplink do.
type link struct {
	mu   sync.Mutex
	rate int64     // bytes per second; 0 = unlimited
	free time.Time // when the link has sent everything reserved so far
}

// SetRate caps the request bodies of all connections together at
// bytesPerSec; 0 lifts the cap.
func (p *Proxy) SetRate(bytesPerSec int64) {
	p.link.mu.Lock()
	p.link.rate = max(bytesPerSec, 0)
	p.link.mu.Unlock()
}

// Rate is the current cap in bytes per second (0: none).
func (p *Proxy) Rate() int64 {
	p.link.mu.Lock()
	defer p.link.mu.Unlock()
	return p.link.rate
}

// send reserves n bytes of link time and says how long to wait until they
// have gone out.
func (l *link) send(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate <= 0 {
		return 0
	}
	now := time.Now()
	l.free = maxTime(l.free, now).Add(time.Duration(int64(n) * int64(time.Second) / l.rate))
	return l.free.Sub(now)
}

// chunk keeps each reservation to about 20 ms of link time, so concurrent
// bodies interleave instead of taking turns by whole buffers.
func (l *link) chunk(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate <= 0 {
		return n
	}
	return max(1, min(n, int(l.rate/50)))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pacedBody reads the client's body no faster than the link allows; the
// client's socket fills and its writes block, as behind a slow modem.
type pacedBody struct {
	io.ReadCloser
	l *link
}

func (b pacedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p[:b.l.chunk(len(p))])
	if n > 0 {
		if d := b.l.send(n); d > 0 {
			time.Sleep(d) // the link's transmission time, not synchronisation
		}
	}
	return n, err
}
