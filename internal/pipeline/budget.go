package pipeline

import (
	"context"
	"sync"
)

// budget bounds the bytes held in staging files at once. A reservation is
// taken before a copy starts, for the size the file had then, and the copy
// never writes more than that, so staging never passes the budget.
type budget struct {
	max int64

	mu      sync.Mutex
	used    int64
	changed chan struct{} // closed and replaced whenever room is freed
}

func newBudget(max int64) *budget { return &budget{max: max, changed: make(chan struct{})} }

// fits reports whether n bytes could ever be staged.
func (b *budget) fits(n int64) bool { return n <= b.max }

// acquire waits until n bytes fit beside what others hold, then takes them.
// Call it only for n that fits.
func (b *budget) acquire(ctx context.Context, n int64) error {
	for {
		b.mu.Lock()
		if b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}
