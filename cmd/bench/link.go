package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/azurite"
	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
)

var flagLink = flag.String("link", "", "simulate a WAN between both sides and Azurite, e.g. rtt=40ms,rate=200Mbit: "+
	"every request waits rtt before it is forwarded, and all request bodies share one rate (kbit, Mbit, Gbit: SI bits/s)")

// link is the simulated uplink in force for the current run; nil is loopback.
var link *faultproxy.Proxy

type linkSpec struct {
	rtt  time.Duration
	rate int64 // bytes per second; 0 unlimited
}

func (l linkSpec) String() string {
	return fmt.Sprintf("link: rtt %v per request, %.0f Mbit/s shared", l.rtt, float64(l.rate)*8/1e6)
}

func parseLink(s string) (linkSpec, error) {
	var l linkSpec
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return l, fmt.Errorf("-link: %q is not key=value", kv)
		}
		switch k {
		case "rtt":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return l, fmt.Errorf("-link rtt: %q", v)
			}
			l.rtt = d
		case "rate":
			n, err := parseBits(v)
			if err != nil {
				return l, fmt.Errorf("-link rate %q: %v", v, err)
			}
			l.rate = int64(n / 8)
		default:
			return l, fmt.Errorf("-link: unknown key %q (want rtt, rate)", k)
		}
	}
	return l, nil
}

// startLink puts the simulated link in front of az for one run: one proxy
// shared by the service and the raw SDK side, so both pay the same delay
// per request and share one rate across all their connections. AzCopy's
// own Azurite gets its own proxy with the same settings.
func startLink(az *azurite.Server, l linkSpec) error {
	p, err := faultproxy.Start(az.BlobEndpoint())
	if err != nil {
		return err
	}
	p.Latency = l.rtt
	p.SetRule(faultproxy.Always(faultproxy.Slow))
	p.SetRate(l.rate)
	link = p
	return nil
}

func stopLink() {
	if link != nil {
		link.Close()
		link = nil
	}
}

// endpoint is az's blob account URL, through the link when one runs.
func endpoint(az *azurite.Server) string {
	if link != nil {
		return link.URL() + "/" + azurite.AccountName
	}
	return az.BlobEndpoint()
}

// connString is az's connection string, through the link when one runs.
func connString(az *azurite.Server) string { return az.ConnectionString(endpoint(az)) }

// parseBits reads 200Mbit, 1.5Gbit, 512kbit or 1000bit as bits per second.
func parseBits(v string) (float64, error) {
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"kbit", 1e3}, {"Mbit", 1e6}, {"Gbit", 1e9}, {"bit", 1}} {
		if num, ok := strings.CutSuffix(v, u.suffix); ok {
			n, err := strconv.ParseFloat(num, 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("want a positive number before %s", u.suffix)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("want e.g. 200Mbit (kbit, Mbit, Gbit)")
}
