package bandwidth

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
)

// Plain rates, as rclone's documentation and its tests write them.
func TestParseRates(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"", 0}, {"off", 0}, {"OFF", 0}, {"0", 0},
		{"10M", 10 * MiB}, {"10m", 10 * MiB},
		{"666", 666 * KiB}, // no suffix: KiB/s
		{"100k", 100 * KiB}, {"512K", 512 * KiB},
		{"0.625M", 655360}, // the docs' "half of a 10 Mbit/s link"
		{"1000B", 1000}, {"1b", 1},
		{"2G", 2 << 30}, {"1T", 1 << 40}, {"1P", 1 << 50},
		{"10MiB", 10 * MiB}, {"10Mi", 10 * MiB}, {"64KiB", 64 * KiB},
		{"10M:100k", 10 * MiB}, // upload:download; the upload side counts
		{"10M:off", 10 * MiB},
		{"off:10M", 0},
		{"  2M  ", 2 * MiB},
	} {
		s, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got := s.RateAt(time.Now()); got != c.want {
			t.Errorf("Parse(%q) = %d B/s, want %d", c.in, got, c.want)
		}
		if s.Timetable {
			t.Errorf("Parse(%q) is a timetable", c.in)
		}
	}
}

// Bad values, most from rclone's own tests, are refused with a reason.
func TestParseRejects(t *testing.T) {
	for _, in := range []string{
		"bad", "bad,bad", "bad bad", "1000X", "2401,666", "1061,666",
		"bad-10:20,666", "Mon-bad,666", "Mon-10:20,bad", "24:00,1M", "10:60,1M", "1:00,1M",
		"-1M", "1M:bad", "M", "nan", "inf", "0.5B", "10M,", ",10M", "08:00,1M,2M",
		"Mond-08:00,1M", "1e30P", "08:00,1M 09:00",
	} {
		if s, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", in, s)
		}
	}
}

// at is a time in UTC on the week of Sunday 2026-11-29.
func at(day time.Weekday, hh, mm int) time.Time {
	return time.Date(2026, 11, 29+int(day), hh, mm, 0, 0, time.UTC)
}

// The docs' daytime timetable: which limit holds at which time.
func TestTimetableRates(t *testing.T) {
	s, err := Parse("08:00,512k 12:00,10M 13:00,512k 18:00,30M 23:00,off")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		t    time.Time
		want int64
	}{
		{at(time.Monday, 7, 59), 0}, // from 23:00 the day before: off
		{at(time.Monday, 8, 0), 512 * KiB},
		{at(time.Monday, 11, 59), 512 * KiB},
		{at(time.Monday, 12, 0), 10 * MiB},
		{at(time.Monday, 13, 30), 512 * KiB},
		{at(time.Monday, 18, 0), 30 * MiB},
		{at(time.Monday, 23, 0), 0},
		{at(time.Sunday, 0, 0), 0}, // wraps round from Saturday 23:00
	} {
		if got := s.RateAt(c.t); got != c.want {
			t.Errorf("%s: %d B/s, want %d", c.t.Format("Mon 15:04"), got, c.want)
		}
	}
	if got, want := s.NextChange(at(time.Monday, 9, 0)), at(time.Monday, 12, 0); !got.Equal(want) {
		t.Errorf("next change after Mon 09:00: %v, want %v", got, want)
	}
}

// Weekday entries (and semicolons between entries, which rclone accepts
// too); an entry without a weekday is every day.
func TestTimetableWeekdays(t *testing.T) {
	s, err := Parse("Mon-08:00,512k;Sat-10:00,off friday-20:00,1M 12:00,2M")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		t    time.Time
		want int64
	}{
		{at(time.Monday, 7, 0), 2 * MiB}, // from Sunday 12:00
		{at(time.Monday, 8, 0), 512 * KiB},
		{at(time.Monday, 12, 0), 2 * MiB},
		{at(time.Friday, 20, 0), 1 * MiB},
		{at(time.Saturday, 10, 0), 0},
		{at(time.Saturday, 12, 0), 2 * MiB},
		{at(time.Sunday, 11, 0), 2 * MiB}, // from Saturday 12:00
	} {
		if got := s.RateAt(c.t); got != c.want {
			t.Errorf("%s: %d B/s, want %d", c.t.Format("Mon 15:04"), got, c.want)
		}
	}
}

// fakeClock runs timers only when advanced.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ft := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, ft)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !ft.stopped
		ft.stopped = true
		return was
	}
}

// advance moves the clock to t, firing due timers in order.
func (c *fakeClock) advance(t time.Time) {
	for {
		c.mu.Lock()
		sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
		var due *fakeTimer
		for i, ft := range c.timers {
			if !ft.stopped && !ft.at.After(t) {
				due = ft
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				break
			}
		}
		if due == nil {
			c.now = t
			c.mu.Unlock()
			return
		}
		c.now = due.at
		due.stopped = true
		c.mu.Unlock()
		due.f()
	}
}

type recorder struct {
	mu   sync.Mutex
	last int64
	sets int
}

func (r *recorder) SetLimit(bps int64) {
	r.mu.Lock()
	r.last = bps
	r.sets++
	r.mu.Unlock()
}

func (r *recorder) get() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// The timetable switches at its times, by the injected clock, and not
// before: just before a boundary the old rate holds.
func TestSchedulerSwitchesAtTheTimes(t *testing.T) {
	s, err := Parse("08:00,2M 18:00,off")
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{now: at(time.Monday, 7, 0)}
	rec := &recorder{}
	c := New(s, rec, clk)
	defer c.Close()
	if rec.get() != 0 {
		t.Fatalf("07:00: %d B/s, want none", rec.get())
	}
	if st := c.State(); st.Limit != nil || *st.Source != SourceConfig || !st.NextChange.Equal(at(time.Monday, 8, 0)) {
		t.Fatalf("07:00 state: %+v", st)
	}
	steps := []struct {
		to   time.Time
		want int64
	}{
		{at(time.Monday, 7, 59).Add(59 * time.Second), 0},
		{at(time.Monday, 8, 0), 2 * MiB},
		{at(time.Monday, 17, 59), 2 * MiB},
		{at(time.Monday, 18, 0), 0},
		{at(time.Tuesday, 8, 0), 2 * MiB}, // the next day again, with no one poking it
		{at(time.Thursday, 9, 30), 2 * MiB},
		{at(time.Thursday, 20, 0), 0},
	}
	for _, st := range steps {
		clk.advance(st.to)
		if got := rec.get(); got != st.want {
			t.Fatalf("%s: %d B/s, want %d", st.to.Format("Mon 15:04:05"), got, st.want)
		}
		if l := c.State().Limit; (l == nil) != (st.want == 0) || l != nil && *l != st.want {
			t.Fatalf("%s: status shows %v, want %d", st.to.Format("Mon 15:04:05"), l, st.want)
		}
	}
}

// An override replaces the configured limit at once, is persisted, and is
// read back by a fresh controller (a restart); Reset returns to the
// configuration and removes the file.
func TestOverridePersistsAndResets(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := Parse("10M")
	clk := &fakeClock{now: at(time.Monday, 12, 0)}
	rec := &recorder{}
	c := New(cfg, rec, clk)
	defer c.Close()
	if _, err := c.Put("1M"); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Put before Load: %v, want ErrNotLoaded", err)
	}
	if err := c.Load(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put("12:00,nope"); !errors.Is(err, ErrBadLimit) {
		t.Fatalf("bad Put: %v", err)
	}
	if rec.get() != 10*MiB {
		t.Fatalf("a bad value changed the limit to %d", rec.get())
	}
	st, err := c.Put("Mon-08:00,512k Mon-13:00,off")
	if err != nil {
		t.Fatal(err)
	}
	if *st.Limit != 512*KiB || *st.Source != SourceOverride || *st.Schedule != "Mon-08:00,512k Mon-13:00,off" || rec.get() != 512*KiB {
		t.Fatalf("after Put: %+v, limiter %d", st, rec.get())
	}

	// A restart: a new controller on the same folder.
	rec2 := &recorder{}
	c2 := New(cfg, rec2, clk)
	defer c2.Close()
	if rec2.get() != 10*MiB {
		t.Fatalf("before Load: %d", rec2.get())
	}
	if err := c2.Load(dir); err != nil {
		t.Fatal(err)
	}
	if rec2.get() != 512*KiB || *c2.State().Source != SourceOverride {
		t.Fatalf("after restart: %d %+v", rec2.get(), c2.State())
	}
	clk.advance(at(time.Monday, 13, 0))
	if rec2.get() != 0 {
		t.Fatalf("the override's timetable did not switch at 13:00: %d", rec2.get())
	}

	st, err = c2.Reset()
	if err != nil {
		t.Fatal(err)
	}
	if *st.Limit != 10*MiB || *st.Source != SourceConfig || rec2.get() != 10*MiB {
		t.Fatalf("after Reset: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, overrideFile)); !os.IsNotExist(err) {
		t.Fatalf("override file after Reset: %v", err)
	}
	// "off" overrides to no limit, which is not the same as no override.
	st, _ = c2.Put("off")
	if st.Limit != nil || *st.Source != SourceOverride || rec2.get() != 0 {
		t.Fatalf("Put off: %+v", st)
	}
}

// A damaged override file is reported and the configured limit stays.
func TestLoadDamagedOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, overrideFile), []byte(`{"limit":"fast"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := Parse("1M")
	rec := &recorder{}
	c := New(cfg, rec, nil)
	defer c.Close()
	if err := c.Load(dir); err == nil {
		t.Fatal("a damaged override loaded without an error")
	}
	if rec.get() != MiB || *c.State().Source != SourceConfig {
		t.Fatalf("after a damaged override: %d %+v", rec.get(), c.State())
	}
	// No configuration, no override: nothing is limited and no source shown.
	c0 := New(Schedule{}, rec, nil)
	defer c0.Close()
	if st := c0.State(); st.Limit != nil || st.Source != nil || st.Schedule != nil || st.NextChange != nil {
		t.Fatalf("unconfigured: %+v", st)
	}
}
