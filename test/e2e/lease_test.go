package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// leasePods prepares two services on one incoming folder and one container,
// each with its own processing root (as the StatefulSet overlay gives each
// replica), with a short session lease.
func leasePods(t *testing.T, leaseS string) (a, b *svc) {
	t.Helper()
	nfs := t.TempDir()
	container := newContainer(t)
	pods := make([]*svc, 2)
	for i := range pods {
		s := newSvc(t)
		s.env["APP_NFS_INCOMING_DIR"] = filepath.Join(nfs, "incoming")
		s.env["APP_NFS_PROCESSING_ROOT"] = filepath.Join(nfs, ".processing", fmt.Sprintf("uploader-%d", i))
		s.env["APP_AZURE_CONTAINER"] = container
		s.env["APP_SESSION_LEASE_S"] = leaseS
		pods[i] = s
	}
	return pods[0], pods[1]
}

// startHeld asserts that s's start of session is refused with 409 naming
// holder; it returns false when the start succeeded instead.
func startHeld(t *testing.T, s *svc, session string, holder *svc) bool {
	t.Helper()
	code, m := s.post("/v1/watch/start", fmt.Sprintf(`{"session":%q}`, session))
	switch code {
	case http.StatusCreated:
		return false
	case http.StatusConflict:
		if m["session"] != session || m["holder"] != holder.processing() || m["error"] == nil {
			t.Fatalf("409 body %v, want session %s held by %s", m, session, holder.processing())
		}
		return true
	}
	t.Fatalf("start %s: %d %v", session, code, m)
	return false
}

// handledFiles counts the log lines in which s handled a file of session.
func handledFiles(s *svc, session string) int {
	n := 0
	for _, l := range s.logs.lines() {
		if _, ok := l["file"]; ok && l["session"] == session {
			n++
		}
	}
	return n
}

// Two pods, one session: the second pod is refused while the first lives,
// takes the session over only after the lease stayed silent for its TTL on
// its own clock, and the first, restarted, does not resume it.
func TestLeaseTakeOverAfterHolderDies(t *testing.T) {
	a, b := leasePods(t, "1")
	a.start()
	b.start()
	a.startSession("s")
	if !startHeld(t, b, "s", a) {
		t.Fatal("second pod started a session the first one watches")
	}

	a.kill()
	killed := time.Now()
	refusals := 0
	var in, date string
	eventually(t, 15*time.Second, "the second pod taking the session over", func() bool {
		if startHeld(t, b, "s", a) {
			refusals++
			return false
		}
		return true
	})
	waited := time.Since(killed)
	// B's clock starts at its last sight of A's last renewal, at most a
	// third of the TTL before the kill.
	if refusals == 0 || waited < 600*time.Millisecond {
		t.Fatalf("taken over %v after the holder died, after %d refusals; want a silent TTL (1 s) first", waited, refusals)
	}
	st := b.status()
	if st["active"] != true || st["session"] != "s" {
		t.Fatalf("second pod's status after take-over: %v", st)
	}
	in, date = st["incoming_dir"].(string), st["date_prefix"].(string)
	want := map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("after-%d.bin", i)
		want[date+"/s/"+name] = writeFile(t, in, name, fmt.Appendf(nil, "taken over %d", i))
	}
	waitBlobs(t, b.container(), want, 20*time.Second)
	eventually(t, 10*time.Second, "the second pod uploading them", func() bool { return num(b.status(), "files_processed") == 3 })

	// The first pod comes back: its persisted session is watched elsewhere.
	a.start()
	st = a.status()
	le, _ := st["lease_error"].(map[string]any)
	if st["active"] != false || le == nil || le["session"] != "s" || le["holder"] != b.processing() {
		t.Fatalf("restarted first pod's status: %v", st)
	}
	for i := range 2 {
		name := fmt.Sprintf("later-%d.bin", i)
		want[date+"/s/"+name] = writeFile(t, in, name, fmt.Appendf(nil, "later %d", i))
	}
	waitBlobs(t, b.container(), want, 20*time.Second)
	eventually(t, 10*time.Second, "the second pod uploading them", func() bool { return num(b.status(), "files_processed") == 5 })
	if n := num(a.status(), "files_processed"); n != 0 || handledFiles(a, "s") != 0 {
		t.Fatalf("restarted first pod uploaded %d files of the session (%d log lines)", n, handledFiles(a, "s"))
	}
	// Given up for good: a second restart does not try again.
	a.restart()
	if st := a.status(); st["active"] != false {
		t.Fatalf("first pod resumed the session on a later restart: %v", st)
	}
	if !startHeld(t, a, "s", b) {
		t.Fatal("first pod started the session the second one watches")
	}
}

// A live holder renews its lease: the other pod is refused over many TTLs,
// and gets the session at once after the holder stopped it (released).
func TestLeaseRenewalKeepsLiveHolder(t *testing.T) {
	a, b := leasePods(t, "0.5")
	a.start()
	b.start()
	a.startSession("live")
	until := time.Now().Add(3 * time.Second) // six TTLs
	for time.Now().Before(until) {
		if !startHeld(t, b, "live", a) {
			t.Fatal("a renewed lease was taken over")
		}
		time.Sleep(50 * time.Millisecond) // pacing the requests, not a synchronisation
	}
	if code, m := a.post("/v1/watch/stop", ""); code != http.StatusOK || m["stopped"] != true {
		t.Fatalf("stop: %d %v", code, m)
	}
	if startHeld(t, b, "live", a) {
		t.Fatal("a released lease still refused the other pod")
	}
}

// A holder frozen longer than the TTL (SIGSTOP stands for a pod stuck on
// NFS) loses the session to the other pod; on waking, its renewal sees the
// lease taken, it stops watching and says so, and every file is uploaded
// once, by the new holder.
func TestLeaseLostStopsTheWatch(t *testing.T) {
	a, b := leasePods(t, "0.5")
	a.start()
	b.start()
	in, date := a.startSession("frozen")
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := func() { _ = a.cmd.Process.Signal(syscall.SIGCONT) }
	t.Cleanup(cont)
	eventually(t, 10*time.Second, "the other pod taking over", func() bool { return !startHeld(t, b, "frozen", a) })
	cont()
	eventually(t, 10*time.Second, "the woken pod giving the session up", func() bool {
		st := a.status()
		le, _ := st["lease_error"].(map[string]any)
		return st["active"] == false && le != nil && le["session"] == "frozen" && le["holder"] == b.processing()
	})
	eventually(t, 5*time.Second, "an ERROR log line about the lost lease", func() bool {
		for _, l := range errorLines(a) {
			if l["step"] == "lease" && l["session"] == "frozen" && l["holder"] == b.processing() {
				return true
			}
		}
		return false
	})
	want := map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("f%d.bin", i)
		want[date+"/frozen/"+name] = writeFile(t, in, name, fmt.Appendf(nil, "frozen %d", i))
	}
	waitBlobs(t, b.container(), want, 20*time.Second)
	eventually(t, 10*time.Second, "the new holder uploading them", func() bool { return num(b.status(), "files_processed") == 3 })
	if n := num(a.status(), "files_processed"); n != 0 {
		t.Fatalf("the pod that lost the lease uploaded %d files", n)
	}
}
