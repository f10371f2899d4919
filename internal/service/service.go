// Package service owns the session: start, stop, resume after a restart,
// the watcher of the active session and the GC loop.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/bandwidth"
	"github.com/edge/nfs-watcher-uploader/internal/lease"
	"github.com/edge/nfs-watcher-uploader/internal/pipeline"
	"github.com/edge/nfs-watcher-uploader/internal/session"
	"github.com/edge/nfs-watcher-uploader/internal/watch"
)

// Options for the service.
type Options struct {
	Extensions map[string]bool
	Exclude    []string
	MinAge     time.Duration
	Poll       time.Duration
	GCInterval time.Duration
	// Leases keeps two pods off one session; nil leases nothing.
	Leases *lease.Manager
}

// ErrBadName is wrapped by Start for an invalid session name.
var ErrBadName = errors.New("invalid session name")

// ActiveError is returned by Start while a session is active.
type ActiveError struct{ Session string }

func (e *ActiveError) Error() string { return fmt.Sprintf("session %q is already active", e.Session) }

// Started describes a started session.
type Started struct {
	Session     string `json:"session"`
	DatePrefix  string `json:"date_prefix"`
	IncomingDir string `json:"incoming_dir"`
	BlobPrefix  string `json:"blob_prefix"`
}

// Problem is a failure that is not one file's: a start-up step, a lease.
type Problem struct {
	Time    time.Time `json:"time"`
	Step    string    `json:"step"`
	Session string    `json:"session,omitempty"`
	Holder  string    `json:"holder,omitempty"`
	Error   string    `json:"error"`
}

// Status is the body of GET /v1/status.
type Status struct {
	Active      bool       `json:"active"`
	Ready       bool       `json:"ready"`
	Session     *string    `json:"session"`
	DatePrefix  *string    `json:"date_prefix"`
	IncomingDir *string    `json:"incoming_dir"`
	BlobPrefix  *string    `json:"blob_prefix"`
	StartedAt   *time.Time `json:"started_at"`
	// StartupError is the last failure of a start-up step being retried;
	// null once start-up finished.
	StartupError *Problem `json:"startup_error"`
	// LeaseError says why a session is not watched here although it was:
	// another pod holds or took over its lease.
	LeaseError *Problem `json:"lease_error"`
	pipeline.Counts
	bandwidth.State
}

type active struct {
	st     session.State
	lease  *lease.Lease // nil without leases
	cancel context.CancelFunc
	done   chan struct{}
}

// Service is the session controller behind the HTTP API.
type Service struct {
	opts Options
	pipe *pipeline.Pipeline
	log  *slog.Logger
	ctx  context.Context // lives as long as the process serves

	// ctl serialises start and stop, which touch NFS; mu guards the state
	// and is never held across I/O, so status answers while NFS hangs.
	ctl      sync.Mutex
	mu       sync.Mutex
	active   *active
	leaseErr *Problem
	ready    atomic.Bool
}

// New returns a service whose watchers and GC live until ctx ends.
func New(ctx context.Context, opts Options, pipe *pipeline.Pipeline, log *slog.Logger) *Service {
	return &Service{opts: opts, pipe: pipe, log: log, ctx: ctx}
}

// SetReady marks start-up finished.
func (s *Service) SetReady() { s.ready.Store(true) }

// Ready reports whether start-up finished.
func (s *Service) Ready() bool { return s.ready.Load() }

func (s *Service) layout() pipeline.Layout { return s.pipe.Layout() }

func (s *Service) started(st session.State) Started {
	return Started{
		Session:     st.Session,
		DatePrefix:  st.DatePrefix,
		IncomingDir: s.layout().IncomingDir(st.Session),
		BlobPrefix:  pipeline.BlobName(st.DatePrefix, st.Session, ""),
	}
}

// Start begins a session; an empty name gets a generated one.
func (s *Service) Start(name string) (Started, error) {
	if name == "" {
		var err error
		if name, err = session.Generate(); err != nil {
			return Started{}, err
		}
	} else if err := session.ValidateName(name); err != nil {
		return Started{}, fmt.Errorf("%w: %v", ErrBadName, err)
	}
	s.ctl.Lock()
	defer s.ctl.Unlock()
	if cur := s.current(); cur != nil {
		return Started{}, &ActiveError{Session: cur.st.Session}
	}
	var ls *lease.Lease
	if s.opts.Leases != nil {
		var err error
		if ls, err = s.opts.Leases.Acquire(name); err != nil {
			return Started{}, err
		}
	}
	now := time.Now().UTC()
	st := session.State{Session: name, DatePrefix: session.DatePrefix(now), Active: true, Started: now}
	if err := s.prepare(st); err != nil {
		if ls != nil {
			_ = ls.Release()
		}
		return Started{}, err
	}
	s.watch(st, ls)
	s.log.Info("session started", "session", name, "date_prefix", st.DatePrefix, "incoming_dir", s.layout().IncomingDir(name))
	return s.started(st), nil
}

// prepare creates the session's folders and persists it as active.
func (s *Service) prepare(st session.State) error {
	l := s.layout()
	for _, d := range []string{l.IncomingDir(st.Session), l.ProcessingDir(st.DatePrefix, st.Session), l.StagingDir(st.DatePrefix, st.Session)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := session.Save(l.Processing, st); err != nil {
		return fmt.Errorf("persist session: %w", err)
	}
	return nil
}

// Resume restarts the watcher of the session persisted as active. When
// another live pod holds its lease, the session moved there: it is not
// watched and is persisted as stopped, so no later restart resumes it.
// A foreign lease that stays silent for the TTL is taken over; ctx bounds
// that wait.
func (s *Service) Resume(ctx context.Context) (*Started, error) {
	st, err := session.Load(s.layout().Processing)
	if err != nil {
		return nil, err
	}
	if !st.Active {
		return nil, nil
	}
	s.ctl.Lock()
	defer s.ctl.Unlock()
	var ls *lease.Lease
	if s.opts.Leases != nil {
		ls, err = s.opts.Leases.AcquireWait(ctx, st.Session)
		var held *lease.HeldError
		if errors.As(err, &held) {
			s.setLeaseErr(st.Session, held.Holder, held)
			s.log.Error("not resuming the session: another pod watches it", "step", "lease",
				"session", st.Session, "holder", held.Holder, "holder_host", held.Host)
			st.Active = false
			if err := session.Save(s.layout().Processing, st); err != nil {
				return nil, fmt.Errorf("persist session as stopped: %w", err)
			}
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("session lease: %w", err)
		}
	}
	if err := s.prepare(st); err != nil {
		return nil, err
	}
	s.watch(st, ls)
	s.log.Info("session resumed", "session", st.Session, "date_prefix", st.DatePrefix)
	r := s.started(st)
	return &r, nil
}

func (s *Service) setLeaseErr(name, holder string, err error) {
	s.mu.Lock()
	s.leaseErr = &Problem{Time: time.Now().UTC(), Step: "lease", Session: name, Holder: holder, Error: err.Error()}
	s.mu.Unlock()
}

// renew keeps the lease fresh until ctx ends; a lease taken by another pod
// ends the watch.
func (s *Service) renew(ctx context.Context, a *active) {
	t := time.NewTicker(s.opts.Leases.TTL() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := a.lease.Renew()
		var lost *lease.LostError
		switch {
		case errors.As(err, &lost):
			s.leaseLost(a, lost)
			return
		case err != nil:
			// Not fatal: others take over only after a whole TTL of silence.
			s.log.Warn("cannot renew the session lease", "step", "lease", "session", a.st.Session, "error", err.Error())
		}
	}
}

// leaseLost stops watching a session another pod took over. Queued and
// in-flight files still finish: they are in this pod's processing root.
func (s *Service) leaseLost(a *active, lost *lease.LostError) {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	if s.current() != a {
		return
	}
	a.cancel()
	s.mu.Lock()
	s.active = nil
	s.mu.Unlock()
	s.setLeaseErr(a.st.Session, lost.Holder, lost)
	s.log.Error("stopped watching the session: another pod took over its lease", "step", "lease",
		"session", a.st.Session, "holder", lost.Holder, "holder_host", lost.Host)
	st := a.st
	st.Active = false
	if err := session.Save(s.layout().Processing, st); err != nil {
		s.log.Error("cannot persist the session as stopped", "step", "lease", "session", st.Session, "error", err.Error())
	}
}

func (s *Service) watch(st session.State, ls *lease.Lease) {
	ctx, cancel := context.WithCancel(s.ctx)
	a := &active{st: st, lease: ls, cancel: cancel, done: make(chan struct{})}
	w := &watch.Watcher{
		Dir: s.layout().IncomingDir(st.Session), Session: st.Session, Date: st.DatePrefix,
		Extensions: s.opts.Extensions, Exclude: s.opts.Exclude, MinAge: s.opts.MinAge, Poll: s.opts.Poll,
		Sink: s.pipe, Stats: s.pipe.Stats(), Log: s.log,
	}
	go func() {
		defer close(a.done)
		w.Run(ctx)
	}()
	s.mu.Lock()
	s.active = a
	s.leaseErr = nil
	s.mu.Unlock()
	if ls != nil {
		go s.renew(ctx, a)
	}
}

func (s *Service) current() *active {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// Stop ends the watcher of the active session; files already queued or in
// flight still finish. It returns the stopped session's name, if any.
func (s *Service) Stop() (string, bool, error) {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	a := s.current()
	if a == nil {
		return "", false, nil
	}
	a.cancel()
	s.mu.Lock()
	s.active = nil
	s.mu.Unlock()
	st := a.st
	st.Active = false
	if err := session.Save(s.layout().Processing, st); err != nil {
		return st.Session, true, fmt.Errorf("session stopped, but persisting that failed (a restart would resume it): %w", err)
	}
	if a.lease != nil {
		if err := a.lease.Release(); err != nil {
			// Harmless: another pod takes the silent lease over after its TTL.
			s.log.Warn("cannot release the session lease", "step", "lease", "session", st.Session, "error", err.Error())
		}
	}
	s.log.Info("session stopped", "session", st.Session)
	return st.Session, true, nil
}

// Status never touches the filesystem.
func (s *Service) Status() Status {
	st := Status{Ready: s.Ready(), Counts: s.pipe.Stats().Snapshot()}
	s.mu.Lock()
	if s.leaseErr != nil {
		p := *s.leaseErr
		st.LeaseError = &p
	}
	s.mu.Unlock()
	if a := s.current(); a != nil {
		info := s.started(a.st)
		started := a.st.Started
		st.Active = true
		st.Session, st.DatePrefix, st.IncomingDir, st.BlobPrefix = &info.Session, &info.DatePrefix, &info.IncomingDir, &info.BlobPrefix
		st.StartedAt = &started
	}
	return st
}

// RunGC deletes completed files every interval until ctx ends, and sweeps
// the processing root for files no worker holds.
func (s *Service) RunGC(ctx context.Context) {
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.pipe.GC(ctx, s.keep)
		if err != nil {
			s.log.WarnContext(ctx, "gc incomplete", "step", "gc", "error", err.Error())
		}
		if n > 0 {
			s.log.InfoContext(ctx, "gc deleted completed files", "step", "gc", "files", n)
		}
		if _, err := s.pipe.Sweep(ctx); err != nil {
			s.log.WarnContext(ctx, "sweep of the processing root failed", "step", "sweep", "error", err.Error())
		}
	}
}

func (s *Service) keep(date, name string) bool {
	a := s.current()
	return a != nil && a.st.DatePrefix == date && a.st.Session == name
}
