package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/azurite"
)

// cli runs the binary as an operator would: a command, flags, an
// environment. It returns stdout, stderr and the exit code.
func runCLI(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.String(), errb.String(), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), 0
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%v still running after 60 s", args)
		return "", "", -1
	}
}

// The CLI drives a running service the way kubectl exec would: only
// APP_HTTP_ADDR in the environment, no flags.
func TestCLIDrivesTheService(t *testing.T) {
	s := newSvc(t).start()
	env := map[string]string{"APP_HTTP_ADDR": s.addr}

	out, errs, code := runCLI(t, env, "start", "cli-cam")
	if code != 0 || !strings.Contains(out, "started session cli-cam") {
		t.Fatalf("start: exit %d\n%s%s", code, out, errs)
	}
	in := s.status()["incoming_dir"].(string)
	date := s.status()["date_prefix"].(string)
	sum := writeFile(t, in, "a.bin", []byte("from the cli test"))
	waitBlobs(t, s.container(), map[string]string{date + "/cli-cam/a.bin": sum}, 20*time.Second)

	out, errs, code = runCLI(t, env, "status")
	if code != 0 || !strings.Contains(out, "cli-cam") || !strings.Contains(out, "active") || !strings.Contains(out, "1 files") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errs)
	}

	out, _, code = runCLI(t, env, "status", "--json")
	var st map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st["session"] != "cli-cam" || num(st, "files_processed") != 1 {
		t.Fatalf("status --json: exit %d\n%s", code, out)
	}
	req, _ := http.NewRequest("GET", "http://"+s.addr+"/v1/status", nil)
	if err := responseError(req, 200, http.Header{"Content-Type": {"application/json"}}, []byte(out)); err != nil {
		t.Errorf("status --json is not the documented body: %v", err)
	}

	// A second start is refused by the service: exit 1 with its reason.
	_, errs, code = runCLI(t, env, "start", "other")
	if code != 1 || !strings.Contains(errs, "409") || !strings.Contains(errs, "cli-cam") {
		t.Fatalf("second start: exit %d, stderr %q", code, errs)
	}

	out, errs, code = runCLI(t, env, "stop")
	if code != 0 || !strings.Contains(out, "stopped session cli-cam") {
		t.Fatalf("stop: exit %d\n%s%s", code, out, errs)
	}
	if s.status()["active"] != false {
		t.Fatal("session still active after the CLI stopped it")
	}
	out, _, code = runCLI(t, env, "stop")
	if code != 0 || !strings.Contains(out, "no session was active") {
		t.Fatalf("second stop: exit %d %q", code, out)
	}
	// --addr wins over APP_HTTP_ADDR, after the positional argument too.
	out, errs, code = runCLI(t, map[string]string{"APP_HTTP_ADDR": "127.0.0.1:1"}, "start", "via-flag", "--addr", s.addr)
	if code != 0 || !strings.Contains(out, "via-flag") {
		t.Fatalf("start --addr: exit %d\n%s%s", code, out, errs)
	}
}

// With a token on the service, the CLI sends the one from its own
// environment; a wrong one is exit 1 naming the variable.
func TestCLISendsTheToken(t *testing.T) {
	s := newSvc(t)
	s.env["APP_API_TOKEN"] = "cli-token"
	s.start()
	_, errs, code := runCLI(t, map[string]string{"APP_HTTP_ADDR": s.addr, "APP_API_TOKEN": "wrong"}, "start", "t1")
	if code != 1 || !strings.Contains(errs, "401") || !strings.Contains(errs, "APP_API_TOKEN") {
		t.Fatalf("wrong token: exit %d, stderr %q", code, errs)
	}
	out, errs, code := runCLI(t, map[string]string{"APP_HTTP_ADDR": s.addr, "APP_API_TOKEN": "cli-token"}, "start", "t1")
	if code != 0 || !strings.Contains(out, "t1") {
		t.Fatalf("right token: exit %d\n%s%s", code, out, errs)
	}
}

// A service that is down is exit 3 with a message saying where the CLI
// looked; a listener on every interface is dialled on loopback.
func TestCLIServiceDown(t *testing.T) {
	ln := freeAddr(t)
	for _, env := range []map[string]string{
		{"APP_HTTP_ADDR": ln},
		{"APP_HTTP_ADDR": ":" + strings.Split(ln, ":")[1]},
	} {
		_, errs, code := runCLI(t, env, "status")
		if code != 3 || !strings.Contains(errs, "127.0.0.1:"+strings.Split(ln, ":")[1]) || !strings.Contains(errs, "did not answer") {
			t.Errorf("%v: exit %d, stderr %q", env, code, errs)
		}
	}
	if _, errs, code := runCLI(t, nil, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errs)
	}
}

// check-config validates exactly as start-up does and masks secrets.
func TestCLICheckConfig(t *testing.T) {
	env := baseEnv(t, t.TempDir())
	env["APP_API_TOKEN"] = "hidden-token-value"
	out, errs, code := runCLI(t, env, "check-config")
	if code != 0 || !strings.Contains(out, "configuration is valid") || !strings.Contains(out, "APP_WORKER_CONCURRENCY") {
		t.Fatalf("valid configuration: exit %d\n%s%s", code, out, errs)
	}
	for _, secret := range []string{"hidden-token-value", "AccountKey=", "Eby8vdM02"} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q printed:\n%s", secret, out)
		}
	}
	env["APP_WORKER_CONCURRENCY"] = "0"
	env["APP_POLL_INTERVAL_S"] = "soon"
	_, errs, code = runCLI(t, env, "check-config")
	if code != 1 || !strings.Contains(errs, "APP_WORKER_CONCURRENCY") || !strings.Contains(errs, "APP_POLL_INTERVAL_S") {
		t.Fatalf("invalid configuration: exit %d, stderr %q", code, errs)
	}
}

func TestCLIVersion(t *testing.T) {
	out, errs, code := runCLI(t, nil, "version")
	if code != 0 || !strings.Contains(out, "github.com/edge/nfs-watcher-uploader") || !strings.Contains(out, runtime.Version()) {
		t.Fatalf("version: exit %d\n%s%s", code, out, errs)
	}
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := azurite.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}
