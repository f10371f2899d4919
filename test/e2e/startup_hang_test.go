package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/nfsfault"
)

// quickly asserts that path answers want within a second.
func quickly(t *testing.T, s *svc, method, path string, want int) map[string]any {
	t.Helper()
	done := make(chan struct{})
	var code int
	var m map[string]any
	go func() {
		defer close(done)
		code, m = s.do(method, path, "")
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatalf("%s %s did not answer within a second", method, path)
	}
	if code != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, code, m, want)
	}
	return m
}

// startupStep is the step of status's startup_error, "" when none (or the
// service is not listening yet).
func startupStep(s *svc) any {
	_, m := s.get("/v1/status")
	se, _ := m["startup_error"].(map[string]any)
	if se == nil || se["error"] == "" {
		return ""
	}
	return se["step"]
}

// The export hangs on the first thing start-up touches: the probes and
// the API answer at once (not ready, start and stop refused as starting),
// and the service becomes ready when the export answers again.
func TestStartupOnHungExport(t *testing.T) {
	s, f := fuseSvc(t)
	release := f.Hang(nfsfault.Lookup, "incoming")
	defer release()
	s.launch()
	eventually(t, 10*time.Second, "start-up hanging on the export", func() bool { return f.Hung() >= 1 })
	quickly(t, s, "GET", "/healthz", http.StatusOK)
	if m := quickly(t, s, "GET", "/readyz", http.StatusServiceUnavailable); m["ready"] != false {
		t.Fatalf("readyz body %v", m)
	}
	for _, path := range []string{"/v1/watch/stop", "/v1/watch/start"} {
		if m := quickly(t, s, "POST", path, http.StatusServiceUnavailable); m["error"] != "service is still starting" {
			t.Fatalf("%s while starting: %v", path, m)
		}
	}
	if m := quickly(t, s, "GET", "/v1/status", http.StatusOK); m["ready"] != false || m["active"] != false {
		t.Fatalf("status while starting: %v", m)
	}
	release()
	s.waitReady()
	in, date := s.startSession("after-hang")
	sum := writeFile(t, in, "a.bin", []byte("after the hang"))
	waitBlobsContain(t, s.container(), date+"/after-hang/a.bin", sum)
}

// SIGTERM while start-up is stuck in a hung NFS call ends the process
// promptly: start-up is abandoned, not waited for.
func TestSigtermWhileStartupHangs(t *testing.T) {
	s, f := fuseSvc(t)
	release := f.Hang(nfsfault.Lookup, "incoming")
	defer release()
	s.launch()
	eventually(t, 10*time.Second, "start-up hanging on the export", func() bool { return f.Hung() >= 1 })
	quickly(t, s, "GET", "/healthz", http.StatusOK)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.waitExit(5 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

// EIO on reading the processing root during recovery: the process keeps
// running, not ready, with the error in status and an ERROR log line; once
// the export reads again it becomes ready and uploads the leftovers.
func TestRecoveryErrorIsRetriedNotFatal(t *testing.T) {
	s, f := fuseSvc(t)
	date := time.Now().UTC().Format("20060102")
	left := filepath.Join(s.root, "backing", ".processing", date, "rec")
	if err := os.MkdirAll(left, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := writeFile(t, left, "left.bin", []byte("left over by a killed pod"))
	f.Fail(nfsfault.Readdir, ".processing", syscall.EIO, -1)
	s.launch()
	eventually(t, 20*time.Second, "the recovery error in status", func() bool { return startupStep(s) == "recovery" })
	// Several attempts, still running and not ready.
	eventually(t, 10*time.Second, "recovery retried", func() bool { return f.Hits(nfsfault.Readdir) >= 3 })
	select {
	case <-s.exited:
		t.Fatalf("process exited on a recovery error: %v\n%s", s.exitErr, s.logs.String())
	default:
	}
	quickly(t, s, "GET", "/readyz", http.StatusServiceUnavailable)
	eventually(t, 5*time.Second, "an ERROR log line with step recovery", func() bool {
		for _, l := range errorLines(s) {
			if l["step"] == "recovery" {
				return true
			}
		}
		return false
	})
	f.Clear()
	s.waitReady()
	if se := s.status()["startup_error"]; se != nil {
		t.Fatalf("startup_error still shown once ready: %v", se)
	}
	waitBlobsContain(t, s.container(), date+"/rec/left.bin", sum)
}

// An unreadable persisted session state fails the resume step: retried,
// shown in status, never fatal; repaired, the session resumes.
func TestResumeErrorIsRetriedNotFatal(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("keep")
	s.kill()
	state := filepath.Join(s.processing(), ".session.json")
	good, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.launch()
	eventually(t, 20*time.Second, "the resume error in status", func() bool { return startupStep(s) == "resume" })
	quickly(t, s, "GET", "/readyz", http.StatusServiceUnavailable)
	if err := os.WriteFile(state, good, 0o644); err != nil {
		t.Fatal(err)
	}
	s.waitReady()
	if st := s.status(); st["active"] != true || st["session"] != "keep" {
		t.Fatalf("status after the repaired resume: %v", st)
	}
	sum := writeFile(t, in, "k.bin", []byte("resumed"))
	waitBlobsContain(t, s.container(), date+"/keep/k.bin", sum)
}
