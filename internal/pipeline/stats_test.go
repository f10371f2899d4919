package pipeline

import (
	"context"
	"errors"
	"testing"
)

// A file that failed and then ends any other way than an upload (skipped
// because someone else took it, dropped, vanished) leaves failing and
// retrying: status must not keep listing it.
func TestReleaseClearsFailing(t *testing.T) {
	p, _ := benchPipeline(t)
	ctx := context.Background()
	it := &Item{Session: "s", Date: "20260101", Name: "f"}
	if !p.Reserve(it) {
		t.Fatal("reserve")
	}
	it.attempts = 1
	p.stats.setRetrying(ctx, it.Key(), true)
	p.stats.failed(ctx, it, "claim", errors.New("EIO"), false)
	if c := p.stats.Snapshot(); len(c.Failing) != 1 || c.Retrying != 1 {
		t.Fatalf("before: failing %v, retrying %d", c.Failing, c.Retrying)
	}
	p.release(ctx, it)
	if c := p.stats.Snapshot(); len(c.Failing) != 0 || c.Retrying != 0 {
		t.Fatalf("after release: failing %v, retrying %d", c.Failing, c.Retrying)
	}
	if p.Pending(it.Date, it.Session, it.Name) {
		t.Fatal("still pending after release")
	}
}

// The staging budget: a reservation that fits is taken at once, one that
// does not waits until room is freed, and one larger than the budget never
// fits.
func TestBudgetWaitsForRoom(t *testing.T) {
	b := newBudget(10)
	ctx := context.Background()
	if err := b.acquire(ctx, 6); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.acquire(ctx, 5) }()
	select {
	case err := <-got:
		t.Fatalf("acquired 5 beside 6 within 10: %v", err)
	default:
	}
	b.release(6)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if b.fits(11) || !b.fits(10) {
		t.Fatal("fits")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.acquire(cctx, 10); err == nil {
		t.Fatal("acquired past the budget")
	}
}
