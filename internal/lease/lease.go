// Package lease keeps a per-session lease file on the shared export, so two
// pods (each with its own processing root) never watch the same session.
//
// The file is <incoming>/.leases/<session>.json. Its holder renews it (a new
// sequence number) every TTL/3. Another process treats it as expired only
// after it has itself seen the same content for a whole TTL on its own
// monotonic clock: the clocks of edge machines and NFS servers disagree, so
// file times are never compared.
package lease

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/atomicfile"
)

// Dir is the folder of lease files below the incoming folder. It starts with
// a dot, so it is never a session and never scanned.
const Dir = ".leases"

// errUnreadable is a lease file that is not a Record: not ours, and judged
// by its raw bytes like any foreign lease.
var errUnreadable = errors.New("unreadable lease file")

const unknownHolder = "unknown (unreadable lease file)"

// Record is the content of a lease file.
type Record struct {
	Session string `json:"session"`
	Holder  string `json:"holder"` // the holder's processing root: stable across its restarts
	Host    string `json:"host"`   // for humans
	Nonce   string `json:"nonce"`  // new on every acquisition
	Seq     uint64 `json:"seq"`    // +1 on every renewal
	// Renewed is the holder's wall clock, for humans only: expiry never reads it.
	Renewed time.Time `json:"renewed"`
}

// HeldError means another live (or not yet expired) holder has the lease.
type HeldError struct {
	Session string
	Holder  string
	Host    string
	// Changed is true when the content changed while this process watched
	// it: the holder is alive and renewing.
	Changed bool
}

func (e *HeldError) Error() string {
	who := e.Holder
	if e.Host != "" {
		who += " on host " + e.Host
	}
	return fmt.Sprintf("session %q is watched by another pod (%s)", e.Session, who)
}

// LostError means the lease no longer names this process: another took it.
type LostError struct {
	Session string
	Holder  string
	Host    string
}

func (e *LostError) Error() string {
	return fmt.Sprintf("lease of session %q was taken over by %s (host %s)", e.Session, e.Holder, e.Host)
}

// seen is what this process last read in a foreign lease, and since when.
type seen struct {
	content []byte
	since   time.Time // carries the monotonic reading
}

// Manager acquires leases for one holder.
type Manager struct {
	dir    string
	holder string
	host   string
	ttl    time.Duration

	mu   sync.Mutex
	seen map[string]seen
}

// NewManager manages leases in <incoming>/.leases for holder.
func NewManager(incoming, holder string, ttl time.Duration) *Manager {
	host, _ := os.Hostname()
	return &Manager{dir: filepath.Join(incoming, Dir), holder: holder, host: host, ttl: ttl, seen: map[string]seen{}}
}

// TTL is how long a silent foreign lease is respected.
func (m *Manager) TTL() time.Duration { return m.ttl }

// Holder is this process's holder id.
func (m *Manager) Holder() string { return m.holder }

func (m *Manager) path(session string) string { return filepath.Join(m.dir, session+".json") }

// Acquire takes the lease of session: a free one, one of this holder (a
// restart of the same pod), or a foreign one whose content this process has
// seen unchanged for the TTL. Otherwise it returns *HeldError and remembers
// what it saw, so a later call can decide.
func (m *Manager) Acquire(session string) (*Lease, error) {
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, fmt.Errorf("lease folder: %w", err)
	}
	for range 3 {
		raw, err := os.ReadFile(m.path(session))
		if errors.Is(err, os.ErrNotExist) {
			l := m.newLease(session)
			err := l.create()
			if err == nil {
				m.forget(session)
				return l, nil
			}
			if errors.Is(err, os.ErrExist) {
				continue // someone created it first: judge theirs
			}
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("read lease: %w", err)
		}
		var rec Record
		if json.Unmarshal(raw, &rec) == nil && rec.Holder == m.holder {
			return m.takeOver(session)
		}
		if held := m.judge(session, raw, rec); held != nil {
			return nil, held
		}
		return m.takeOver(session)
	}
	return nil, fmt.Errorf("lease of session %q keeps changing under us", session)
}

// AcquireWait is Acquire for a restart, which has no earlier sight of a
// foreign lease: it reads it again every TTL/3 until the content stays the
// same for the TTL (a dead holder: taken over) or changes (a live holder:
// *HeldError with Changed set).
func (m *Manager) AcquireWait(ctx context.Context, session string) (*Lease, error) {
	m.forget(session)
	for {
		l, err := m.Acquire(session)
		var held *HeldError
		if !errors.As(err, &held) || held.Changed {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(m.ttl / 3):
		}
	}
}

// judge returns nil when the foreign content has been seen unchanged for
// the TTL, else a HeldError (recording the first sight of new content).
func (m *Manager) judge(session string, raw []byte, rec Record) *HeldError {
	m.mu.Lock()
	defer m.mu.Unlock()
	held := &HeldError{Session: session, Holder: rec.Holder, Host: rec.Host}
	if held.Holder == "" {
		held.Holder = unknownHolder
	}
	s, ok := m.seen[session]
	if ok && bytes.Equal(s.content, raw) {
		if time.Since(s.since) >= m.ttl {
			return nil
		}
		return held
	}
	held.Changed = ok
	m.seen[session] = seen{content: raw, since: time.Now()}
	return held
}

func (m *Manager) forget(session string) {
	m.mu.Lock()
	delete(m.seen, session)
	m.mu.Unlock()
}

func (m *Manager) takeOver(session string) (*Lease, error) {
	l := m.newLease(session)
	if err := l.write(); err != nil {
		return nil, err
	}
	m.forget(session)
	return l, nil
}

func (m *Manager) newLease(session string) *Lease {
	return &Lease{m: m, rec: Record{Session: session, Holder: m.holder, Host: m.host, Nonce: nonce(), Renewed: time.Now().UTC()}}
}

func nonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Lease is one acquisition. Renew and Release are safe to call from
// different goroutines.
type Lease struct {
	m *Manager

	mu       sync.Mutex // held across I/O: Release waits for a running Renew
	rec      Record
	released bool
}

// Session is the leased session.
func (l *Lease) Session() string { return l.rec.Session }

// tmp writes the record to a fresh temp file in the lease folder. Its name
// starts with a dot, so it never looks like a lease.
func (l *Lease) tmp() (string, error) {
	b, err := json.Marshal(l.rec)
	if err != nil {
		return "", err
	}
	return atomicfile.Temp(l.m.dir, ".tmp-"+l.rec.Session+"-*", b)
}

// create links the record into place only if no lease exists: link(2)
// never replaces, also over NFS.
func (l *Lease) create() error {
	tmp, err := l.tmp()
	if err != nil {
		return fmt.Errorf("write lease: %w", err)
	}
	defer os.Remove(tmp)
	err = os.Link(tmp, l.m.path(l.rec.Session))
	if errors.Is(err, os.ErrExist) && l.isOurs() {
		// A retransmitted NFS LINK reports EEXIST after it succeeded.
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create lease: %w", err)
	}
	return err
}

// write replaces the lease file atomically with the record.
func (l *Lease) write() error {
	tmp, err := l.tmp()
	if err != nil {
		return fmt.Errorf("write lease: %w", err)
	}
	if err := os.Rename(tmp, l.m.path(l.rec.Session)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write lease: %w", err)
	}
	return nil
}

func (l *Lease) isOurs() bool {
	cur, err := l.read()
	return err == nil && cur.Holder == l.rec.Holder && cur.Nonce == l.rec.Nonce
}

func (l *Lease) read() (Record, error) {
	var cur Record
	raw, err := os.ReadFile(l.m.path(l.rec.Session))
	if err != nil {
		return cur, err
	}
	if err := json.Unmarshal(raw, &cur); err != nil {
		return cur, fmt.Errorf("%w: %v", errUnreadable, err)
	}
	return cur, nil
}

// Renew bumps the sequence number if the lease is still ours; *LostError
// when another holder replaced it. A missing file (removed by hand) is
// created again.
func (l *Lease) Renew() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	cur, err := l.read()
	if errors.Is(err, os.ErrNotExist) {
		l.rec.Seq++
		l.rec.Renewed = time.Now().UTC()
		if err := l.create(); errors.Is(err, os.ErrExist) {
			cur, err = l.read()
			if err == nil {
				return &LostError{Session: l.rec.Session, Holder: cur.Holder, Host: cur.Host}
			}
			return fmt.Errorf("read lease: %w", err)
		} else if err != nil {
			return err
		}
		return nil
	}
	if errors.Is(err, errUnreadable) {
		return &LostError{Session: l.rec.Session, Holder: unknownHolder}
	}
	if err != nil {
		return fmt.Errorf("read lease: %w", err)
	}
	if cur.Holder != l.rec.Holder || cur.Nonce != l.rec.Nonce {
		return &LostError{Session: l.rec.Session, Holder: cur.Holder, Host: cur.Host}
	}
	l.rec.Seq++
	l.rec.Renewed = time.Now().UTC()
	return l.write()
}

// Release removes the lease file if it is still ours and stops renewals.
func (l *Lease) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	l.released = true
	if !l.isOurs() {
		return nil
	}
	if err := os.Remove(l.m.path(l.rec.Session)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}
