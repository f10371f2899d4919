package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/edge/nfs-watcher-uploader/internal/config"
)

// checkConfig runs the same validation start-up runs first. It does not
// create folders or contact Azure: it is safe to run beside the service.
func (c *cmd) checkConfig(args []string) int {
	pos, ok := c.flags("check-config", args, false, nil)
	if !ok || !c.noArgs("check-config", pos) {
		return ExitUsage
	}
	environ := map[string]string{}
	for _, name := range config.Names() {
		if v := c.getenv(name); v != "" {
			environ[name] = v
		}
	}
	eff, err := config.Effective(environ)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return ExitFailed
	}
	w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	for _, kv := range eff {
		v := kv[1]
		if v == "" {
			v = "(unset)"
		}
		fmt.Fprintf(w, "%s\t%s\n", kv[0], v)
	}
	_ = w.Flush()
	fmt.Fprintln(c.stdout, "configuration is valid")
	return ExitOK
}
