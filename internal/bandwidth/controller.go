package bandwidth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/atomicfile"
)

// Setter applies a limit in bytes per second; 0 lifts it.
type Setter interface{ SetLimit(bytesPerSec int64) }

// Clock is the time source; tests inject one they advance by hand.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Sources of the limit in force, as /v1/status shows them.
const (
	SourceConfig   = "config"
	SourceOverride = "override"
)

// State is the limit in force, as /v1/status and the bandwidth endpoints
// show it.
type State struct {
	// Limit is bytes per second now in force; nil when nothing is limited.
	Limit *int64 `json:"bandwidth_limit"`
	// Source is "override" while an operator's override is in force (even
	// "off"), "config" when APP_BANDWIDTH_LIMIT is set, else nil.
	Source *string `json:"bandwidth_source"`
	// Schedule is the limit or timetable in force, as written; nil for none.
	Schedule *string `json:"bandwidth_schedule"`
	// NextChange is when the timetable next changes the limit; nil if never.
	NextChange *time.Time `json:"bandwidth_next_change"`
}

// ErrBadLimit is wrapped by Put for a value that does not parse.
var ErrBadLimit = errors.New("invalid bandwidth limit")

// ErrNotLoaded is returned by Put and Reset before Load read the persisted
// override: a change made then could be undone by the load.
var ErrNotLoaded = errors.New("service is still starting")

// overrideFile sits in the processing root beside the persisted session:
// owned by the same pod, it survives restarts like the session does.
const overrideFile = ".bandwidth.json"

type persisted struct {
	Limit string    `json:"limit"`
	SetAt time.Time `json:"set_at"`
}

// maxTimer re-reads the wall clock at least this often, so a clock step
// (NTP, a daylight-saving change) moves the switch times with it.
const maxTimer = time.Minute

// Controller keeps the limit in force on a Setter: the configured schedule,
// or the override an operator put, switched at the timetable's times.
type Controller struct {
	set    Setter
	clock  Clock
	config Schedule
	dir    string // where the override is persisted; empty until Load

	ctl sync.Mutex // serialises Put, Reset and Load, which write files
	mu  sync.Mutex // guards the fields below; never held across I/O
	// override is nil when none is set.
	override *Schedule
	loaded   bool
	stop     func() bool
	gen      int // bumps on every apply, so a stale timer does nothing
	state    State
}

// New applies config at once; clock nil is the real clock.
func New(config Schedule, set Setter, clock Clock) *Controller {
	if clock == nil {
		clock = realClock{}
	}
	c := &Controller{set: set, clock: clock, config: config}
	c.mu.Lock()
	c.applyLocked()
	c.mu.Unlock()
	return c
}

// Load reads the override persisted in dir, if any, and applies it. A file
// that cannot be read or parsed is reported and the configured limit stays.
func (c *Controller) Load(dir string) error {
	c.ctl.Lock()
	defer c.ctl.Unlock()
	var err error
	var ov *Schedule
	b, rerr := os.ReadFile(filepath.Join(dir, overrideFile))
	switch {
	case errors.Is(rerr, os.ErrNotExist):
	case rerr != nil:
		err = rerr
	default:
		var p persisted
		if jerr := json.Unmarshal(b, &p); jerr != nil {
			err = fmt.Errorf("parse %s: %w", overrideFile, jerr)
		} else if s, perr := Parse(p.Limit); perr != nil {
			err = fmt.Errorf("%s: %w", overrideFile, perr)
		} else {
			ov = &s
		}
	}
	c.mu.Lock()
	c.dir, c.loaded, c.override = dir, true, ov
	c.applyLocked()
	c.mu.Unlock()
	return err
}

// Put sets and persists an override; it survives restarts until Reset.
// "off" and "" override to no limit.
func (c *Controller) Put(spec string) (State, error) {
	s, err := Parse(spec)
	if err != nil {
		return State{}, fmt.Errorf("%w: %v", ErrBadLimit, err)
	}
	c.ctl.Lock()
	defer c.ctl.Unlock()
	dir, loaded := c.where()
	if !loaded {
		return State{}, ErrNotLoaded
	}
	if s.Spec == "" {
		s.Spec = "off"
	}
	// Persisted first: an override that would be lost on restart is refused.
	if err := save(dir, persisted{Limit: s.Spec, SetAt: c.clock.Now().UTC()}); err != nil {
		return State{}, fmt.Errorf("persist the bandwidth override: %w", err)
	}
	c.mu.Lock()
	c.override = &s
	c.applyLocked()
	st := c.state
	c.mu.Unlock()
	return st, nil
}

// Reset drops the override; the configured limit applies again.
func (c *Controller) Reset() (State, error) {
	c.ctl.Lock()
	defer c.ctl.Unlock()
	dir, loaded := c.where()
	if !loaded {
		return State{}, ErrNotLoaded
	}
	if err := os.Remove(filepath.Join(dir, overrideFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return State{}, fmt.Errorf("remove the bandwidth override: %w", err)
	}
	c.mu.Lock()
	c.override = nil
	c.applyLocked()
	st := c.state
	c.mu.Unlock()
	return st, nil
}

func (c *Controller) where() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dir, c.loaded
}

// State is the limit in force; it touches no file.
func (c *Controller) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Close stops the timetable's timer.
func (c *Controller) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
}

// applyLocked sets the rate in force now and arms a timer for the next
// switch. c.mu is held.
func (c *Controller) applyLocked() {
	c.gen++
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	sched, src := c.config, SourceConfig
	if c.override != nil {
		sched, src = *c.override, SourceOverride
	}
	now := c.clock.Now()
	rate := sched.RateAt(now)
	c.set.SetLimit(rate)

	var st State
	if rate > 0 {
		st.Limit = &rate
	}
	if c.override != nil || sched.Spec != "" {
		st.Source = &src
		spec := sched.Spec
		st.Schedule = &spec
	}
	if next := sched.NextChange(now); !next.IsZero() {
		st.NextChange = &next
	}
	c.state = st

	if b := sched.NextBoundary(now); !b.IsZero() {
		gen := c.gen
		d := min(b.Sub(now), maxTimer)
		c.stop = c.clock.AfterFunc(d, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.gen == gen {
				c.applyLocked()
			}
		})
	}
}

// save writes the override atomically (temp file, fsync, rename), as the
// session state is written: a kill mid-write leaves the old or the new one.
func save(dir string, p persisted) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return atomicfile.Write(dir, overrideFile, b)
}
