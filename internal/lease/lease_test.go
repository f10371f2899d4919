package lease

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func mustHeld(t *testing.T, err error, holder string) *HeldError {
	t.Helper()
	var held *HeldError
	if !errors.As(err, &held) || held.Holder != holder {
		t.Fatalf("want held by %s, got %v", holder, err)
	}
	return held
}

// A foreign lease is taken over only after this process saw it unchanged
// for the TTL; the first sight is always a refusal.
func TestForeignLeaseExpiresOnlyOnOurClock(t *testing.T) {
	in := t.TempDir()
	ttl := 200 * time.Millisecond
	a, b := NewManager(in, "/p/a", ttl), NewManager(in, "/p/b", ttl)
	la, err := a.Acquire("s")
	if err != nil {
		t.Fatal(err)
	}
	first := time.Now()
	mustHeld(t, func() error { _, err := b.Acquire("s"); return err }(), "/p/a")
	var lb *Lease
	for lb == nil {
		lb, err = b.Acquire("s")
		if err != nil {
			mustHeld(t, err, "/p/a")
			if time.Since(first) > 5*ttl {
				t.Fatal("silent lease never expired")
			}
		}
	}
	if d := time.Since(first); d < ttl {
		t.Fatalf("taken over after %v, before the TTL %v", d, ttl)
	}
	var lost *LostError
	if err := la.Renew(); !errors.As(err, &lost) || lost.Holder != "/p/b" {
		t.Fatalf("renewal of a taken lease: %v", err)
	}
	// Release of a lease that is no longer ours leaves the new holder's file.
	if err := la.Release(); err != nil {
		t.Fatal(err)
	}
	if err := lb.Renew(); err != nil {
		t.Fatalf("new holder's renewal after the old one released: %v", err)
	}
	if err := lb.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(in, Dir, "s.json")); !os.IsNotExist(err) {
		t.Fatalf("released lease still there: %v", err)
	}
}

// A renewing holder is never taken over, however long the other waits.
func TestRenewedLeaseStaysHeld(t *testing.T) {
	in := t.TempDir()
	ttl := 150 * time.Millisecond
	a, b := NewManager(in, "/p/a", ttl), NewManager(in, "/p/b", ttl)
	la, err := a.Acquire("s")
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(4 * ttl)
	next := time.Now()
	for time.Now().Before(until) {
		if time.Now().After(next) {
			if err := la.Renew(); err != nil {
				t.Fatal(err)
			}
			next = time.Now().Add(ttl / 3)
		}
		if _, err := b.Acquire("s"); err != nil {
			mustHeld(t, err, "/p/a")
		} else {
			t.Fatal("took over a renewed lease")
		}
		time.Sleep(5 * time.Millisecond) // pace the loop, not a synchronisation
	}
	// A restart's wait sees the renewal and reports a live holder.
	done := make(chan error, 1)
	go func() { _, err := b.AcquireWait(context.Background(), "s"); done <- err }()
	for {
		select {
		case err := <-done:
			if h := mustHeld(t, err, "/p/a"); !h.Changed {
				t.Fatalf("live holder not reported as renewing: %+v", h)
			}
			return
		case <-time.After(ttl / 3):
			if err := la.Renew(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The same holder (a restart of the same pod) takes its lease over at once;
// a dead foreign holder's lease is taken by AcquireWait after the TTL.
func TestSameHolderAndWaitForDeadHolder(t *testing.T) {
	in := t.TempDir()
	ttl := 150 * time.Millisecond
	if _, err := NewManager(in, "/p/a", ttl).Acquire("s"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewManager(in, "/p/a", ttl).Acquire("s"); err != nil {
		t.Fatalf("same holder after a restart: %v", err)
	}
	start := time.Now()
	lb, err := NewManager(in, "/p/b", ttl).AcquireWait(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < ttl {
		t.Fatal("dead holder's lease taken before the TTL")
	}
	if err := lb.Renew(); err != nil {
		t.Fatal(err)
	}
}

// An unreadable lease file is foreign content like any other.
func TestUnreadableLeaseIsJudgedByItsBytes(t *testing.T) {
	in := t.TempDir()
	if err := os.MkdirAll(filepath.Join(in, Dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, Dir, "s.json"), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := NewManager(in, "/p/a", 100*time.Millisecond)
	mustHeld(t, func() error { _, err := m.Acquire("s"); return err }(), unknownHolder)
	if _, err := m.AcquireWait(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
}
