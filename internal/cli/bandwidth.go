package cli

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/edge/nfs-watcher-uploader/internal/bandwidth"
)

// bandwidth shows the upload limit, overrides it (LIMIT, off) or drops the
// override (reset). Several arguments are one timetable: kubectl exec passes
// "08:00,2M 18:00,off" unquoted as two.
func (c *cmd) bandwidth(args []string) int {
	pos, ok := c.flags("bandwidth", args, true, nil)
	if !ok {
		return ExitUsage
	}
	var st bandwidth.State
	var code int
	switch {
	case len(pos) == 0:
		code = c.call(http.MethodGet, "/v1/status", nil, &st, nil)
	case len(pos) == 1 && pos[0] == "reset":
		code = c.call(http.MethodDelete, "/v1/bandwidth", nil, &st, nil)
	default:
		code = c.call(http.MethodPut, "/v1/bandwidth", map[string]string{"limit": strings.Join(pos, " ")}, &st, nil)
	}
	if code != ExitOK {
		return code
	}
	fmt.Fprintln(c.stdout, describeBandwidth(st))
	return ExitOK
}

func describeBandwidth(st bandwidth.State) string {
	s := "upload bandwidth: unlimited"
	if st.Limit != nil {
		s = fmt.Sprintf("upload bandwidth: %s/s (%d bytes/s)", human(*st.Limit), *st.Limit)
	}
	if st.Source != nil {
		s += fmt.Sprintf("\nfrom: %s %q", *st.Source, *st.Schedule)
	}
	if st.NextChange != nil {
		s += "\nnext change: " + st.NextChange.Local().Format("Mon 2006-01-02 15:04 MST")
	}
	return s
}

func human(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
