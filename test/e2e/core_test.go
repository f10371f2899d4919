package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/google/uuid"
)

// PRD 2: a named session uploads under <YYYYMMDD>/<name>/, with the same
// bytes, and the files leave NFS and staging; counters match.
func TestNamedSessionUploadsAndCleansUp(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("cam-1")
	if want := time.Now().UTC().Format("20060102"); date != want {
		t.Fatalf("date_prefix %q, want %q", date, want)
	}
	if in != filepath.Join(s.incoming(), "cam-1") {
		t.Fatalf("incoming_dir %q", in)
	}
	for _, d := range []string{in, filepath.Join(s.processing(), date, "cam-1"), filepath.Join(s.staging(), date, "cam-1")} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Fatalf("session folder %s not created: %v", d, err)
		}
	}
	want := map[string]string{}
	var total int64
	for i := range 12 {
		data := []byte(strings.Repeat(fmt.Sprintf("file %d;", i), 100*i+1))
		name := fmt.Sprintf("f%02d.bin", i)
		want[date+"/cam-1/"+name] = writeFile(t, in, name, data)
		total += int64(len(data))
	}
	waitBlobs(t, s.container(), want, 20*time.Second)
	s.waitNFSEmpty("cam-1")
	st := s.status()
	if num(st, "files_processed") != 12 || num(st, "bytes_uploaded") != total || num(st, "files_failed") != 0 {
		t.Fatalf("status counters: %v (want 12 files, %d bytes)", st, total)
	}
	if st["last_error"] != nil || st["active"] != true || st["session"] != "cam-1" || st["date_prefix"] != date {
		t.Fatalf("status: %v", st)
	}
	props, err := azc.ServiceClient().NewContainerClient(s.container()).NewBlobClient(date+"/cam-1/f03.bin").GetProperties(context.Background(), nil)
	if err != nil || props.BlobType == nil || *props.BlobType != blob.BlobTypeBlockBlob {
		t.Fatalf("blob type: %v %v", props.BlobType, err)
	}
}

var generatedName = regexp.MustCompile(`^00-session-([0-9a-f-]{36})$`)

// PRD 1: no name (empty body, or {}) gives 00-session-<UUIDv7>.
func TestGeneratedSessionName(t *testing.T) {
	s := newSvc(t).start()
	for _, body := range []string{"", "{}", `{"session": null}`} {
		code, m := s.post("/v1/watch/start", body)
		if code != http.StatusCreated {
			t.Fatalf("body %q: %d %v", body, code, m)
		}
		name := m["session"].(string)
		g := generatedName.FindStringSubmatch(name)
		if g == nil {
			t.Fatalf("generated name %q", name)
		}
		id, err := uuid.Parse(g[1])
		if err != nil || id.Version() != 7 {
			t.Fatalf("%q is not a UUIDv7: %v", g[1], err)
		}
		if m["blob_prefix"] != m["date_prefix"].(string)+"/"+name+"/" {
			t.Fatalf("blob_prefix %v", m)
		}
		sha := writeFile(t, m["incoming_dir"].(string), "x.dat", []byte(body+"payload"))
		waitBlobsContain(t, s.container(), m["date_prefix"].(string)+"/"+name+"/x.dat", sha)
		if code, m := s.post("/v1/watch/stop", ""); code != 200 || m["stopped"] != true || m["session"] != name {
			t.Fatalf("stop: %d %v", code, m)
		}
	}
}

func waitBlobsContain(t *testing.T, container, name, sum string) {
	t.Helper()
	eventually(t, 20*time.Second, "blob "+name, func() bool { return blobs(t, container)[name] == sum })
}

func TestStartConflictAndStop(t *testing.T) {
	s := newSvc(t).start()
	if code, m := s.post("/v1/watch/stop", ""); code != 200 || m["stopped"] != false || m["session"] != nil {
		t.Fatalf("stop with nothing active: %d %v", code, m)
	}
	st := s.status()
	if st["active"] != false || st["session"] != nil || st["incoming_dir"] != nil || st["date_prefix"] != nil {
		t.Fatalf("inactive status: %v", st)
	}
	s.startSession("one")
	code, m := s.post("/v1/watch/start", `{"session":"two"}`)
	if code != http.StatusConflict || m["session"] != "one" || m["error"] == nil {
		t.Fatalf("second start: %d %v", code, m)
	}
	if code, m := s.post("/v1/watch/stop", ""); code != 200 || m["stopped"] != true || m["session"] != "one" {
		t.Fatalf("stop: %d %v", code, m)
	}
	s.startSession("two")
}

func TestBadSessionNamesAndBodies(t *testing.T) {
	s := newSvc(t).start()
	cases := []struct {
		body string
		code int
	}{
		{`{"session":".."}`, 400},
		{`{"session":"."}`, 400},
		{`{"session":".hidden"}`, 400},
		{`{"session":"a/b"}`, 400},
		{`{"session":"../etc"}`, 400},
		{`{"session":"a\u0000b"}`, 400},
		{`{"session":"` + strings.Repeat("x", 64) + `"}`, 400},
		{`{"session":"caméra"}`, 400},
		{`{"session":"with space"}`, 400},
		{`{"session":""}`, 400},
		{`{"session":5}`, 400},
		{`{"session":["a"]}`, 400},
		{`{"session":"ok","extra":1}`, 400},
		{`{"session":`, 400},
		{`not json`, 400},
		{`{"session":"a"} {"session":"b"}`, 400},
		{`{"session":"` + strings.Repeat("y", 100<<10) + `"}`, 413},
	}
	for _, c := range cases {
		code, m := s.post("/v1/watch/start", c.body)
		if code != c.code || m["error"] == nil || m["error"] == "" {
			t.Errorf("body %.60q: got %d %v, want %d with an error", c.body, code, m, c.code)
		}
	}
	if st := s.status(); st["active"] != false {
		t.Fatalf("a bad request started a session: %v", st)
	}
	entries, _ := os.ReadDir(s.incoming())
	if len(entries) != 0 {
		t.Fatalf("bad requests created folders in incoming: %v", entries)
	}
	// 63 characters is the longest accepted name.
	s.startSession(strings.Repeat("z", 63))
}

// PRD 3: the file sits in .processing (never deleted) while its upload
// hangs, and leaves NFS only once the blob exists.
func TestFileLeavesNFSOnlyAfterUpload(t *testing.T) {
	s, p := newProxiedSvc(t)
	s.start()
	in, date := s.startSession("hold")
	holdPuts(p)
	sum := writeFile(t, in, "a.bin", []byte("precious bytes"))
	claimed := filepath.Join(s.processing(), date, "hold", "a.bin")
	eventually(t, 10*time.Second, "upload held", func() bool { return p.Hanging.Load() > 0 })
	if _, err := os.Stat(claimed); err != nil {
		t.Fatalf("claimed file not in .processing during upload: %v", err)
	}
	// PRD 5: the API answers while an upload is stuck.
	for _, path := range []string{"/healthz", "/readyz", "/v1/status"} {
		if code, _ := s.get(path); code != 200 {
			t.Fatalf("%s answered %d during a stuck upload", path, code)
		}
	}
	if st := s.status(); num(st, "in_flight") != 1 || num(st, "files_processed") != 0 {
		t.Fatalf("status during upload: %v", st)
	}
	if len(blobs(t, s.container())) != 0 {
		t.Fatal("blob exists before upload was released")
	}
	p.Release()
	waitBlobs(t, s.container(), map[string]string{date + "/hold/a.bin": sum}, 20*time.Second)
	s.waitNFSEmpty("hold")
}

// PRD 4: SIGKILL while files are in .processing; the restarted process
// uploads each exactly once with the right bytes, overwriting stale blobs,
// and resumes the session.
func TestKillDuringUploadRecovers(t *testing.T) {
	s, p := newProxiedSvc(t)
	s.env["APP_WORKER_CONCURRENCY"] = "4"
	s.start()
	in, date := s.startSession("crash")
	// A stale blob of one name: recovery must overwrite it.
	if _, err := azc.UploadBuffer(context.Background(), s.container(), date+"/crash/f0.bin", []byte("stale"), nil); err != nil {
		t.Fatal(err)
	}
	holdPuts(p)
	want := map[string]string{}
	for i := range 8 {
		name := fmt.Sprintf("f%d.bin", i)
		want[date+"/crash/"+name] = writeFile(t, in, name, []byte(strings.Repeat(name, 1000+i)))
	}
	// Four workers: four files claimed and stuck in upload, four still queued.
	eventually(t, 10*time.Second, "four files claimed and held", func() bool {
		return p.Hanging.Load() == 4 && len(filesUnder(t, filepath.Join(s.processing(), date, "crash"))) == 4
	})
	s.kill()
	p.Release()
	s.env["APP_AZURE_CONNECTION_STRING"] = az.ConnectionString("")
	s.start()
	waitBlobs(t, s.container(), want, 20*time.Second)
	s.waitNFSEmpty("crash")
	if st := s.status(); st["active"] != true || st["session"] != "crash" || num(st, "files_processed") != 8 {
		t.Fatalf("after recovery: %v", st)
	}
}

// SPEC §6: the active session survives a restart with nothing in flight;
// a stopped one is not resumed.
func TestActiveSessionSurvivesRestart(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("keep")
	writeFile(t, in, "before.txt", []byte("before"))
	eventually(t, 20*time.Second, "first upload and GC", func() bool {
		return num(s.status(), "gc_deleted") == 1
	})
	s.restart()
	st := s.status()
	if st["active"] != true || st["session"] != "keep" || st["date_prefix"] != date {
		t.Fatalf("after restart: %v", st)
	}
	sum := writeFile(t, in, "after.txt", []byte("after"))
	waitBlobsContain(t, s.container(), date+"/keep/after.txt", sum)

	if code, _ := s.post("/v1/watch/stop", ""); code != 200 {
		t.Fatal("stop failed")
	}
	s.restart()
	if st := s.status(); st["active"] != false {
		t.Fatalf("stopped session resumed: %v", st)
	}
	writeFile(t, in, "ignored.txt", []byte("not watched"))
	// Give the (absent) watcher many poll intervals; the file must stay.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(in, "ignored.txt")); err != nil {
			t.Fatal("a stopped session's folder was still watched")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Leftover files of another, stopped session are uploaded on recovery too.
func TestRecoveryUploadsLeftoversOfOtherSessions(t *testing.T) {
	s := newSvc(t)
	dir := filepath.Join(s.processing(), "20240101", "old-session")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := writeFile(t, dir, "left.bin", []byte("left behind by a crash"))
	// A completed one waiting for GC is not uploaded again, just deleted.
	if err := os.MkdirAll(filepath.Join(dir, ".done"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, ".done"), "done.bin", []byte("already uploaded"))
	s.start()
	waitBlobs(t, s.container(), map[string]string{"20240101/old-session/left.bin": sum}, 20*time.Second)
	eventually(t, 10*time.Second, "processing emptied", func() bool { return len(filesUnder(t, s.processing())) == 0 })
	if st := s.status(); st["active"] != false {
		t.Fatalf("recovery resumed a session that was never persisted active: %v", st)
	}
}

func TestProbesAndUnknownRoutes(t *testing.T) {
	s := newSvc(t).start()
	if code, m := s.get("/healthz"); code != 200 || m["ok"] != true {
		t.Fatalf("healthz %d %v", code, m)
	}
	if code, m := s.get("/readyz"); code != 200 || m["ready"] != true {
		t.Fatalf("readyz %d %v", code, m)
	}
	if code, m := s.get("/nope"); code != 404 || m["error"] == nil {
		t.Fatalf("unknown route %d %v", code, m)
	}
	st := s.status()
	for _, k := range []string{"active", "session", "date_prefix", "incoming_dir", "queue_depth", "in_flight",
		"files_processed", "files_failed", "bytes_uploaded", "last_error"} {
		if _, ok := st[k]; !ok {
			t.Errorf("status lacks %q: %v", k, st)
		}
	}
}

// APP_STAGING_MODE=direct uploads from .processing without a local copy,
// with the same names, bytes and clean-up.
func TestDirectStagingMode(t *testing.T) {
	s := newSvc(t)
	s.env["APP_STAGING_MODE"] = "direct"
	s.env["APP_AZURE_MAX_SINGLE_PUT_SIZE"] = "65536"
	s.env["APP_AZURE_MAX_BLOCK_SIZE"] = "16384"
	s.start()
	in, date := s.startSession("direct")
	want := map[string]string{}
	for i := range 6 {
		name := fmt.Sprintf("d%d.bin", i)
		want[date+"/direct/"+name] = writeFile(t, in, name, []byte(strings.Repeat(name, 5000*i+1)))
	}
	waitBlobs(t, s.container(), want, 20*time.Second)
	s.waitNFSEmpty("direct")
	if n := num(s.status(), "files_processed"); n != 6 {
		t.Fatalf("files_processed %d", n)
	}
}
