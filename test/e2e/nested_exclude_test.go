package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A kill while a nested file is in flight: after the restart it is
// recovered from its nested processing folder and uploaded to the right
// blob name, and excluded names are left in place, unreported.
func TestNestedRecoveryAndExclusions(t *testing.T) {
	s, p := newProxiedSvc(t)
	s.env["APP_FILE_EXCLUDE"] = "*.tmp,~*"
	s.start()
	holdPuts(p)
	in, date := s.startSession("nested-kill")
	dir := filepath.Join(in, "site", "2026", "11")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{date + "/nested-kill/site/2026/11/reading.csv": writeFile(t, dir, "reading.csv", []byte("t,v\n1,2\n"))}
	writeFile(t, dir, "upload.tmp", []byte("excluded"))
	writeFile(t, dir, "~lock", []byte("excluded"))
	eventually(t, 20*time.Second, "upload held", func() bool { return p.Hanging.Load() > 0 })
	if _, err := os.Stat(filepath.Join(s.processing(), date, "nested-kill", "site", "2026", "11", "reading.csv")); err != nil {
		t.Fatalf("the nested file is not in its nested processing folder: %v", err)
	}
	s.kill()
	p.Release()
	s.start()
	waitBlobs(t, s.container(), want, 20*time.Second)
	for _, n := range []string{"upload.tmp", "~lock"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Fatalf("excluded %s was taken: %v", n, err)
		}
	}
	if sk := s.status()["skipped"].([]any); len(sk) != 0 {
		t.Fatalf("excluded files are listed as skipped: %v", sk)
	}
}
