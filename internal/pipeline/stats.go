package pipeline

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Observer receives every count the pipeline makes, so metrics are fed from
// the same place as /v1/status. Telemetry implements it.
type Observer interface {
	FileProcessed(ctx context.Context, session string, size int64, upload, latency time.Duration)
	FileFailed(ctx context.Context, session, step string, permanent bool)
	QueueDelta(ctx context.Context, n int64)
	Retrying(ctx context.Context, n int64)
	GCDeleted(ctx context.Context, n int64)
	ScanDone(ctx context.Context, session string, d time.Duration, entries int)
	StagingDelta(ctx context.Context, n int64)
	FileDirect(ctx context.Context, session string)
}

// NopObserver measures nothing: the Observer when no metrics are collected.
type NopObserver struct{}

func (NopObserver) FileProcessed(context.Context, string, int64, time.Duration, time.Duration) {}
func (NopObserver) FileFailed(context.Context, string, string, bool)                           {}
func (NopObserver) QueueDelta(context.Context, int64)                                          {}
func (NopObserver) Retrying(context.Context, int64)                                            {}
func (NopObserver) GCDeleted(context.Context, int64)                                           {}
func (NopObserver) ScanDone(context.Context, string, time.Duration, int)                       {}
func (NopObserver) StagingDelta(context.Context, int64)                                        {}
func (NopObserver) FileDirect(context.Context, string)                                         {}

// LastError is the most recent failure, as /v1/status shows it.
type LastError struct {
	Time  time.Time `json:"time"`
	File  string    `json:"file"`
	Error string    `json:"error"`
}

// Failing is one file that waits for a retry.
type Failing struct {
	File         string    `json:"file"`
	Step         string    `json:"step"`
	Attempts     int       `json:"attempts"`
	Error        string    `json:"error"`
	Permanent    bool      `json:"permanent"`
	FirstFailure time.Time `json:"first_failure"`
	NextRetry    time.Time `json:"next_retry"`
}

// Skipped is an incoming entry that will not be uploaded, and why.
type Skipped struct {
	File   string    `json:"file"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// Direct is a file uploaded straight from .processing instead of from a
// staging copy, and why.
type Direct struct {
	File   string    `json:"file"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Counts is a snapshot for /v1/status.
type Counts struct {
	QueueDepth     int64      `json:"queue_depth"`
	InFlight       int64      `json:"in_flight"`
	Retrying       int64      `json:"retrying"`
	FilesProcessed int64      `json:"files_processed"`
	FilesFailed    int64      `json:"files_failed"`
	FilesVanished  int64      `json:"files_vanished"`
	FilesDirect    int64      `json:"files_direct"`
	FilesSkipped   int64      `json:"files_skipped"`
	BytesUploaded  int64      `json:"bytes_uploaded"`
	GCDeleted      int64      `json:"gc_deleted"`
	StagingBytes   int64      `json:"staging_bytes"`
	StagingBudget  int64      `json:"staging_budget_bytes"`
	LastError      *LastError `json:"last_error"`
	Failing        []Failing  `json:"failing"`
	Skipped        []Skipped  `json:"skipped"`
	Direct         []Direct   `json:"direct"`
}

// maxListed bounds the failing and skipped lists in status; maxDirect the
// most recent direct uploads shown.
const (
	maxListed = 50
	maxDirect = 20
)

// Stats is the single place that counts files and bytes. Its lock is never
// held across I/O, so status answers even when NFS hangs.
type Stats struct {
	obs Observer

	mu       sync.Mutex
	c        Counts
	failing  map[string]Failing
	skipped  map[string]map[string]Skipped // blob prefix of a session -> its entries
	retrying map[string]bool
	direct   []Direct // newest last
}

// NewStats returns counters that report to obs (nil for none).
func NewStats(obs Observer) *Stats {
	if obs == nil {
		obs = NopObserver{}
	}
	return &Stats{obs: obs, failing: map[string]Failing{}, skipped: map[string]map[string]Skipped{}, retrying: map[string]bool{}}
}

// Observer returns where counts are reported.
func (s *Stats) Observer() Observer { return s.obs }

func (s *Stats) queued(ctx context.Context, n int64) {
	s.mu.Lock()
	s.c.QueueDepth += n
	s.mu.Unlock()
	s.obs.QueueDelta(ctx, n)
}

func (s *Stats) inFlight(n int64) {
	s.mu.Lock()
	s.c.InFlight += n
	s.mu.Unlock()
}

func (s *Stats) processed(ctx context.Context, it *Item, size int64, upload time.Duration) {
	s.mu.Lock()
	s.c.FilesProcessed++
	s.c.BytesUploaded += size
	s.mu.Unlock()
	s.obs.FileProcessed(ctx, it.Session, size, upload, time.Since(it.Found))
}

func (s *Stats) failed(ctx context.Context, it *Item, step string, err error, permanent bool) {
	now := time.Now()
	s.mu.Lock()
	s.c.FilesFailed++
	s.c.LastError = &LastError{Time: now, File: it.Key(), Error: step + ": " + err.Error()}
	s.failing[it.Key()] = Failing{
		File: it.Key(), Step: step, Attempts: it.attempts, Error: err.Error(), Permanent: permanent,
		FirstFailure: it.firstFailure, NextRetry: it.nextTry,
	}
	s.mu.Unlock()
	s.obs.FileFailed(ctx, it.Session, step, permanent)
}

func (s *Stats) vanished(ctx context.Context, it *Item, err error) {
	s.mu.Lock()
	s.c.FilesVanished++
	s.c.LastError = &LastError{Time: time.Now(), File: it.Key(), Error: err.Error()}
	delete(s.failing, it.Key())
	s.mu.Unlock()
	s.obs.FileFailed(ctx, it.Session, "vanished", true)
}

// setRetrying counts a file as waiting for a retry, or no longer; a file
// that is no longer retrying leaves the failing list too.
func (s *Stats) setRetrying(ctx context.Context, key string, on bool) {
	s.mu.Lock()
	was := s.retrying[key]
	if on {
		s.retrying[key] = true
	} else {
		delete(s.retrying, key)
		delete(s.failing, key)
	}
	s.c.Retrying = int64(len(s.retrying))
	s.mu.Unlock()
	switch {
	case on && !was:
		s.obs.Retrying(ctx, 1)
	case !on && was:
		s.obs.Retrying(ctx, -1)
	}
}

func (s *Stats) gcDeleted(ctx context.Context, n int64) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.c.GCDeleted += n
	s.mu.Unlock()
	s.obs.GCDeleted(ctx, n)
}

// SetSkipped replaces the entries of one session (blob prefix) that are
// left in place; nil forgets them (the session stopped).
func (s *Stats) SetSkipped(prefix string, entries map[string]Skipped) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(entries) == 0 {
		delete(s.skipped, prefix)
		return
	}
	s.skipped[prefix] = entries
}

func (s *Stats) stagingDelta(ctx context.Context, n int64) {
	s.mu.Lock()
	s.c.StagingBytes += n
	s.mu.Unlock()
	s.obs.StagingDelta(ctx, n)
}

func (s *Stats) setStagingBudget(n int64) {
	s.mu.Lock()
	s.c.StagingBudget = n
	s.mu.Unlock()
}

func (s *Stats) wentDirect(ctx context.Context, it *Item, reason string) {
	s.mu.Lock()
	s.c.FilesDirect++
	s.direct = append(s.direct, Direct{File: it.Key(), Reason: reason, Time: time.Now()})
	if len(s.direct) > maxDirect {
		s.direct = s.direct[len(s.direct)-maxDirect:]
	}
	s.mu.Unlock()
	s.obs.FileDirect(ctx, it.Session)
}

// problem reports a failure that belongs to no file (a folder recovery
// could not read) as the last error.
func (s *Stats) problem(what string, err error) {
	s.mu.Lock()
	s.c.LastError = &LastError{Time: time.Now(), File: what, Error: err.Error()}
	s.mu.Unlock()
}

// Snapshot copies the counters; lists are oldest first and bounded.
func (s *Stats) Snapshot() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.c
	if c.LastError != nil {
		le := *c.LastError
		c.LastError = &le
	}
	c.Failing = make([]Failing, 0, len(s.failing))
	for _, f := range s.failing {
		c.Failing = append(c.Failing, f)
	}
	sort.Slice(c.Failing, func(i, j int) bool { return c.Failing[i].FirstFailure.Before(c.Failing[j].FirstFailure) })
	if len(c.Failing) > maxListed {
		c.Failing = c.Failing[:maxListed]
	}
	c.Skipped = []Skipped{}
	for _, m := range s.skipped {
		c.FilesSkipped += int64(len(m))
		for _, f := range m {
			c.Skipped = append(c.Skipped, f)
		}
	}
	sort.Slice(c.Skipped, func(i, j int) bool { return c.Skipped[i].Since.Before(c.Skipped[j].Since) })
	if len(c.Skipped) > maxListed {
		c.Skipped = c.Skipped[:maxListed]
	}
	c.Direct = append([]Direct{}, s.direct...)
	return c
}
