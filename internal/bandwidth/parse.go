// Package bandwidth parses bandwidth limits in rclone's --bwlimit syntax,
// timetable included, and keeps the limit in force: the configured one or
// an operator's override, switched at the timetable's times.
package bandwidth

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Slot is one timetable entry: from Minute of the week (Sunday 00:00 = 0,
// as rclone counts) the upload limit is Rate bytes per second, 0 for none.
type Slot struct {
	Minute int
	Rate   int64
}

// Schedule is a parsed limit: one rate, or a weekly timetable. The zero
// Schedule limits nothing.
type Schedule struct {
	Spec      string // as given, trimmed
	Slots     []Slot // sorted by Minute; one slot at minute 0 for a plain rate
	Timetable bool   // entries with times, switched at those times
}

const (
	minutesPerDay  = 24 * 60
	minutesPerWeek = 7 * minutesPerDay
)

// Parse reads rclone's --bwlimit syntax:
//
//	10M            a rate; no suffix is KiB/s; B K M G T P (any case, also Ki/KiB)
//	10M:off        upload:download; only the upload side is used here
//	off, 0, ""     no limit
//	08:00,512k 18:00,off                   a timetable, every day
//	Mon-08:00,512k Sat-10:00,off           with weekdays (Mon or Monday, any case)
//
// Timetable entries are separated by spaces or semicolons. Suffixes are
// binary: 1K is 1024 bytes per second.
func Parse(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Schedule{}, nil
	}
	if !strings.ContainsAny(s, " \t;,") {
		r, err := parsePair(s)
		if err != nil {
			return Schedule{}, err
		}
		return Schedule{Spec: s, Slots: []Slot{{Minute: 0, Rate: r}}}, nil
	}
	var slots []Slot
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == ';' }) {
		when, bw, ok := strings.Cut(tok, ",")
		if !ok || strings.Contains(bw, ",") {
			return Schedule{}, fmt.Errorf("invalid time/bandwidth entry %q (want [WEEKDAY-]HH:MM,BANDWIDTH)", tok)
		}
		r, err := parsePair(bw)
		if err != nil {
			return Schedule{}, fmt.Errorf("entry %q: %w", tok, err)
		}
		days := []int{0, 1, 2, 3, 4, 5, 6} // no weekday: every day
		hhmm := when
		if day, rest, hasDay := strings.Cut(when, "-"); hasDay {
			d, err := parseWeekday(day)
			if err != nil {
				return Schedule{}, fmt.Errorf("entry %q: %w", tok, err)
			}
			days, hhmm = []int{d}, rest
		}
		m, err := parseHHMM(hhmm)
		if err != nil {
			return Schedule{}, fmt.Errorf("entry %q: %w", tok, err)
		}
		for _, d := range days {
			slots = append(slots, Slot{Minute: d*minutesPerDay + m, Rate: r})
		}
	}
	// Stable: of two entries at the same minute the later one wins, as in rclone.
	sort.SliceStable(slots, func(i, j int) bool { return slots[i].Minute < slots[j].Minute })
	return Schedule{Spec: s, Slots: slots, Timetable: true}, nil
}

func parsePair(s string) (int64, error) {
	up, down, hasDown := strings.Cut(s, ":")
	r, err := parseRate(up)
	if err != nil {
		return 0, err
	}
	if hasDown {
		// The download side limits nothing here, but must still be valid.
		if _, err := parseRate(down); err != nil {
			return 0, fmt.Errorf("download side: %w", err)
		}
	}
	return r, nil
}

// parseRate reads one rclone size in bytes per second; off is 0 (none).
func parseRate(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty bandwidth")
	}
	if strings.EqualFold(s, "off") {
		return 0, nil
	}
	num, mult := s, float64(1<<10) // no suffix: KiB/s
	last := s[len(s)-1]
	switch {
	case last >= '0' && last <= '9' || last == '.':
	case last == 'b' || last == 'B':
		num, mult = s[:len(s)-1], 1
		if n := len(s); n > 2 && s[n-2] == 'i' { // KiB, MiB, ...
			m, ok := multiplier(s[n-3])
			if !ok {
				return 0, fmt.Errorf("bad suffix in %q", s)
			}
			num, mult = s[:n-3], m
		}
	case last == 'i' || last == 'I': // Ki, Mi, ...
		if len(s) < 2 {
			return 0, fmt.Errorf("bad suffix in %q", s)
		}
		m, ok := multiplier(s[len(s)-2])
		if !ok {
			return 0, fmt.Errorf("bad suffix in %q", s)
		}
		num, mult = s[:len(s)-2], m
	default:
		m, ok := multiplier(last)
		if !ok {
			return 0, fmt.Errorf("bad suffix %q in %q (want B, K, M, G, T or P)", last, s)
		}
		num, mult = s[:len(s)-1], m
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number", num)
	}
	if v < 0 {
		return 0, fmt.Errorf("bandwidth %q is negative", s)
	}
	bps := v * mult
	if bps >= math.MaxInt64/2 {
		return 0, fmt.Errorf("bandwidth %q is too large", s)
	}
	if v > 0 && bps < 1 {
		// rclone would read this as 0, no limit: the opposite of what was asked.
		return 0, fmt.Errorf("bandwidth %q is below 1 byte/s", s)
	}
	return int64(bps), nil
}

func multiplier(c byte) (float64, bool) {
	switch c {
	case 'k', 'K':
		return 1 << 10, true
	case 'm', 'M':
		return 1 << 20, true
	case 'g', 'G':
		return 1 << 30, true
	case 't', 'T':
		return 1 << 40, true
	case 'p', 'P':
		return 1 << 50, true
	}
	return 0, false
}

var weekdays = map[string]int{
	"sun": 0, "sunday": 0, "mon": 1, "monday": 1, "tue": 2, "tuesday": 2, "wed": 3, "wednesday": 3,
	"thu": 4, "thursday": 4, "fri": 5, "friday": 5, "sat": 6, "saturday": 6,
}

func parseWeekday(s string) (int, error) {
	d, ok := weekdays[strings.ToLower(s)]
	if !ok {
		return 0, fmt.Errorf("invalid weekday %q (want Mon or Monday, ...)", s)
	}
	return d, nil
}

// parseHHMM reads exactly HH:MM, 00:00 to 23:59, as minutes of the day.
func parseHHMM(s string) (int, error) {
	bad := fmt.Errorf("invalid time %q (want HH:MM from 00:00 to 23:59)", s)
	if len(s) != 5 || s[2] != ':' {
		return 0, bad
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 23 || m > 59 {
		return 0, bad
	}
	return h*60 + m, nil
}

// Limited reports whether the schedule ever limits anything.
func (s Schedule) Limited() bool {
	for _, sl := range s.Slots {
		if sl.Rate > 0 {
			return true
		}
	}
	return false
}

func minuteOfWeek(t time.Time) int {
	return int(t.Weekday())*minutesPerDay + t.Hour()*60 + t.Minute()
}

// RateAt is the limit in force at t, in t's time zone: the latest entry at
// or before t in the week, wrapping round to the week's last entry. 0 is none.
func (s Schedule) RateAt(t time.Time) int64 {
	if len(s.Slots) == 0 {
		return 0
	}
	m := minuteOfWeek(t)
	r := s.Slots[len(s.Slots)-1].Rate
	for _, sl := range s.Slots {
		if sl.Minute > m {
			break
		}
		r = sl.Rate
	}
	return r
}

// NextBoundary is the first time after t at which an entry starts; zero for
// a schedule of one plain rate.
func (s Schedule) NextBoundary(t time.Time) time.Time {
	if !s.Timetable {
		return time.Time{}
	}
	var best time.Time
	y, mo, d := t.Date()
	wd := int(t.Weekday())
	for _, sl := range s.Slots {
		day, min := sl.Minute/minutesPerDay, sl.Minute%minutesPerDay
		ahead := (day - wd + 7) % 7
		c := time.Date(y, mo, d+ahead, min/60, min%60, 0, 0, t.Location())
		if !c.After(t) {
			c = time.Date(y, mo, d+ahead+7, min/60, min%60, 0, 0, t.Location())
		}
		if best.IsZero() || c.Before(best) {
			best = c
		}
	}
	return best
}

// NextChange is the first boundary after t at which the rate differs from
// the one in force at t; zero when it never changes.
func (s Schedule) NextChange(t time.Time) time.Time {
	cur := s.RateAt(t)
	b := t
	for range len(s.Slots) + 1 {
		b = s.NextBoundary(b)
		if b.IsZero() {
			return b
		}
		if s.RateAt(b) != cur {
			return b
		}
	}
	return time.Time{}
}
