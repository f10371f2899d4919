package cli

import (
	"flag"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/service"
)

func (c *cmd) status(args []string) int {
	var raw bool
	pos, ok := c.flags("status", args, true, func(fs *flag.FlagSet) { fs.BoolVar(&raw, "json", false, "print the raw /v1/status body") })
	if !ok || !c.noArgs("status", pos) {
		return ExitUsage
	}
	var st service.Status
	var body []byte
	if code := c.call(http.MethodGet, "/v1/status", nil, &st, &body); code != ExitOK {
		return code
	}
	if raw {
		_, _ = c.stdout.Write(body)
		return ExitOK
	}
	printStatus(c, st)
	return ExitOK
}

func printStatus(c *cmd, st service.Status) {
	w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	state := "idle (no session)"
	if st.Active {
		state = "active"
	}
	if !st.Ready {
		state = "starting"
	}
	fmt.Fprintf(w, "state\t%s\n", state)
	if st.Session != nil {
		since := ""
		if st.StartedAt != nil {
			since = fmt.Sprintf(" (since %s, %s ago)", st.StartedAt.Format(time.RFC3339), time.Since(*st.StartedAt).Round(time.Second))
		}
		fmt.Fprintf(w, "session\t%s%s\n", *st.Session, since)
		fmt.Fprintf(w, "incoming\t%s\n", deref(st.IncomingDir))
		fmt.Fprintf(w, "blobs\t%s\n", deref(st.BlobPrefix))
	}
	fmt.Fprintf(w, "uploaded\t%d files, %s\n", st.FilesProcessed, size(st.BytesUploaded))
	fmt.Fprintf(w, "waiting\t%d queued, %d in flight, %d retrying\n", st.QueueDepth, st.InFlight, st.Retrying)
	fmt.Fprintf(w, "problems\t%d failed attempts, %d vanished, %d skipped\n", st.FilesFailed, st.FilesVanished, st.FilesSkipped)
	fmt.Fprintf(w, "staging\t%s of %s; %d uploaded direct\n", size(st.StagingBytes), size(st.StagingBudget), st.FilesDirect)
	fmt.Fprintf(w, "deleted\t%d completed files removed from NFS\n", st.GCDeleted)
	if p := st.StartupError; p != nil {
		fmt.Fprintf(w, "START-UP\t%s failing since %s: %s\n", p.Step, p.Time.Format(time.RFC3339), p.Error)
	}
	if p := st.LeaseError; p != nil {
		fmt.Fprintf(w, "LEASE\tsession %s held by %s: %s\n", p.Session, p.Holder, p.Error)
	}
	if e := st.LastError; e != nil {
		fmt.Fprintf(w, "last error\t%s %s: %s\n", e.Time.Format(time.RFC3339), e.File, e.Error)
	}
	_ = w.Flush()
	if len(st.Failing) > 0 {
		fmt.Fprintf(c.stdout, "\nfailing (%d retrying, oldest first):\n", st.Retrying)
		w = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "  FILE\tSTEP\tATTEMPTS\tNEXT RETRY\tERROR")
		for _, f := range st.Failing {
			step := f.Step
			if f.Permanent {
				step += " (permanent)"
			}
			fmt.Fprintf(w, "  %s\t%s\t%d\t%s\t%s\n", f.File, step, f.Attempts, f.NextRetry.Format(time.TimeOnly), oneLine(f.Error))
		}
		_ = w.Flush()
	}
	if len(st.Skipped) > 0 {
		fmt.Fprintf(c.stdout, "\nskipped (%d left in place):\n", st.FilesSkipped)
		w = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "  ENTRY\tREASON")
		for _, s := range st.Skipped {
			fmt.Fprintf(w, "  %s\t%s\n", s.File, oneLine(s.Reason))
		}
		_ = w.Flush()
	}
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
