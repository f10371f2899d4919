package config

import (
	"strings"
	"testing"
	"time"
)

// APP_BANDWIDTH_LIMIT takes rclone's --bwlimit syntax; unset limits nothing.
func TestBandwidthLimit(t *testing.T) {
	c, err := Load(minimal())
	if err != nil {
		t.Fatal(err)
	}
	if c.Bandwidth().Limited() {
		t.Fatalf("unset: %+v", c.Bandwidth())
	}
	monday9 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for in, want := range map[string]int64{
		"off": 0, "10M": 10 << 20, "512": 512 << 10, "10M:off": 10 << 20,
		"08:00,2M 18:00,off": 2 << 20, "Mon-08:00,512k Sat-10:00,off": 512 << 10,
	} {
		e := minimal()
		e["APP_BANDWIDTH_LIMIT"] = in
		c, err := Load(e)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := c.Bandwidth().RateAt(monday9); got != want {
			t.Fatalf("%q on Monday 09:00: %d B/s, want %d", in, got, want)
		}
	}
	for _, bad := range []string{"fast", "10X", "25:00,1M", "Mon-08:00", "-5M"} {
		e := minimal()
		e["APP_BANDWIDTH_LIMIT"] = bad
		if msg := problem(t, e, "APP_BANDWIDTH_LIMIT"); !strings.Contains(msg, "bwlimit") {
			t.Fatalf("%q: problem %q, want one naming the rclone syntax", bad, msg)
		}
	}
}
