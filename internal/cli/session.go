package cli

import (
	"fmt"
	"net/http"

	"github.com/edge/nfs-watcher-uploader/internal/service"
)

func (c *cmd) start(args []string) int {
	pos, ok := c.flags("start", args, true, nil)
	if !ok {
		return ExitUsage
	}
	if len(pos) > 1 {
		fmt.Fprintf(c.stderr, "start takes at most one session name, got %d\n", len(pos))
		return ExitUsage
	}
	body := map[string]string{}
	if len(pos) == 1 {
		body["session"] = pos[0]
	}
	var res service.Started
	if code := c.call(http.MethodPost, "/v1/watch/start", body, &res, nil); code != ExitOK {
		return code
	}
	fmt.Fprintf(c.stdout, "started session %s\nproducers write to %s\nblobs are named %s<file>\n", res.Session, res.IncomingDir, res.BlobPrefix)
	return ExitOK
}

func (c *cmd) stop(args []string) int {
	pos, ok := c.flags("stop", args, true, nil)
	if !ok || !c.noArgs("stop", pos) {
		return ExitUsage
	}
	var res struct {
		Stopped bool    `json:"stopped"`
		Session *string `json:"session"`
	}
	if code := c.call(http.MethodPost, "/v1/watch/stop", nil, &res, nil); code != ExitOK {
		return code
	}
	if !res.Stopped || res.Session == nil {
		fmt.Fprintln(c.stdout, "no session was active")
		return ExitOK
	}
	fmt.Fprintf(c.stdout, "stopped session %s; files already queued or in flight still finish\n", *res.Session)
	return ExitOK
}
