// Package cli is the service's own client: the same binary, run with a
// command, talks to a running service over its HTTP API, so an operator
// can drive it with kubectl exec in an image that has no shell or curl.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Exit codes, the same for every command.
const (
	ExitOK          = 0
	ExitFailed      = 1 // the service answered an error, or the configuration is invalid
	ExitUsage       = 2 // unknown command or flag
	ExitUnreachable = 3 // no answer from the service: it is down or --addr is wrong
)

// ExitError carries a command's exit code; its message was already printed.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }
func (e *ExitError) ExitCode() int { return e.Code }

// IsCommand reports whether args (without the program name) ask for a
// command rather than for serving.
func IsCommand(args []string) bool { return len(args) > 0 }

const usage = `Usage: nfs-watcher-uploader [command] [flags]

Without a command the service starts and serves. Commands talk to a running
service at --addr (default: this environment's APP_HTTP_ADDR, on 127.0.0.1),
sending APP_API_TOKEN or APP_API_TOKEN_FILE's token when one is set:

  status [--json]     session, counters and the files that need attention
  start [NAME]        start watching a session (no NAME: a generated one)
  stop                stop watching; queued and in-flight files still finish
  bandwidth [LIMIT|off|reset]
                      show the upload bandwidth limit, override it (rclone
                      --bwlimit syntax, e.g. 10M or 08:00,2M 18:00,off; kept
                      across restarts) or return to APP_BANDWIDTH_LIMIT
  check-config        validate the APP_* environment as start-up does and print
                      the configuration in force, secrets masked
  version             module version, commit and Go version

Flags of status, start, stop and bandwidth:
  --addr HOST:PORT    the service's API address
  --timeout DURATION  give up after this long (default 30s)

Exit codes: 0 done; 1 the service answered an error, or the configuration is
invalid; 2 usage error; 3 the service did not answer.
`

// Run executes one command; args excludes the program name.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &cmd{ctx: ctx, getenv: getenv, stdout: stdout, stderr: stderr}
	code := c.run(args)
	if code == ExitOK {
		return nil
	}
	return &ExitError{Code: code}
}

type cmd struct {
	ctx            context.Context
	getenv         func(string) string
	stdout, stderr io.Writer

	addr    string
	timeout time.Duration
}

func (c *cmd) run(args []string) int {
	name, rest := args[0], args[1:]
	switch name {
	case "status":
		return c.status(rest)
	case "start":
		return c.start(rest)
	case "stop":
		return c.stop(rest)
	case "bandwidth":
		return c.bandwidth(rest)
	case "check-config":
		return c.checkConfig(rest)
	case "version":
		return c.version(rest)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(c.stderr, "unknown command %q\n\n%s", name, usage)
	return ExitUsage
}

// flags parses flags anywhere among the arguments (Go's flag package stops
// at the first positional one) and returns the positional ones.
func (c *cmd) flags(name string, args []string, client bool, extra func(*flag.FlagSet)) ([]string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { fmt.Fprint(c.stderr, usage) }
	if client {
		fs.StringVar(&c.addr, "addr", defaultAddr(c.getenv("APP_HTTP_ADDR")), "the service's API address")
		fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up after this long")
	}
	if extra != nil {
		extra(fs)
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, true
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// defaultAddr turns the service's listen address into one to dial: a
// listener on every interface (":8000", "0.0.0.0:8000") is reached on
// loopback, which is where kubectl exec runs the command.
func defaultAddr(listen string) string {
	if listen == "" {
		listen = ":8000"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (c *cmd) baseURL() string {
	a := strings.TrimRight(c.addr, "/")
	if strings.HasPrefix(a, "http://") || strings.HasPrefix(a, "https://") {
		return a
	}
	return "http://" + a
}

// token is the one the service itself reads, so the CLI inside the pod
// needs no flag: APP_API_TOKEN, else the file APP_API_TOKEN_FILE names.
func (c *cmd) token() (string, error) {
	if t := c.getenv("APP_API_TOKEN"); t != "" {
		return t, nil
	}
	p := c.getenv("APP_API_TOKEN_FILE")
	if p == "" {
		return "", nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("APP_API_TOKEN_FILE: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// apiError is an answer outside 2xx; its message is the body's "error".
type apiError struct {
	code int
	msg  string
	body map[string]any
}

func (e *apiError) Error() string { return fmt.Sprintf("the service answered %d: %s", e.code, e.msg) }

// call sends one request and decodes the JSON answer into out (and raw).
// It returns the exit code to use when it fails, having printed why.
func (c *cmd) call(method, path string, body any, out any, raw *[]byte) int {
	ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL()+path, rd)
	if err != nil {
		fmt.Fprintf(c.stderr, "bad --addr %q: %v\n", c.addr, err)
		return ExitUsage
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method != http.MethodGet {
		tok, err := c.token()
		if err != nil {
			fmt.Fprintln(c.stderr, err)
			return ExitFailed
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(c.stderr, "the service at %s did not answer (is it running? set --addr or APP_HTTP_ADDR): %v\n", c.baseURL(), err)
		return ExitUnreachable
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Fprintf(c.stderr, "the service at %s broke off its answer: %v\n", c.baseURL(), err)
		return ExitUnreachable
	}
	if raw != nil {
		*raw = b
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{code: resp.StatusCode, msg: strings.TrimSpace(string(b))}
		if json.Unmarshal(b, &e.body) == nil {
			if m, ok := e.body["error"].(string); ok {
				e.msg = m
			}
		}
		fmt.Fprintln(c.stderr, e.Error())
		if resp.StatusCode == http.StatusUnauthorized {
			fmt.Fprintln(c.stderr, "set APP_API_TOKEN (or APP_API_TOKEN_FILE) to the service's token")
		}
		return ExitFailed
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			fmt.Fprintf(c.stderr, "the service answered something that is not its JSON (is %s this service?): %v\n", c.baseURL(), err)
			return ExitFailed
		}
	}
	return ExitOK
}

var errNoArgs = errors.New("takes no arguments")

func (c *cmd) noArgs(name string, pos []string) bool {
	if len(pos) > 0 {
		fmt.Fprintf(c.stderr, "%s %v: %v\n", name, pos, errNoArgs)
		return false
	}
	return true
}
