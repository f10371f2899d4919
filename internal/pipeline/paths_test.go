package pipeline

import (
	"path/filepath"
	"testing"
)

// under must give exactly filepath.Join's path, whatever the name.
func TestUnderIsJoin(t *testing.T) {
	dirs := []string{"", ".", "/", "/mnt/nfs/.processing/20260101/s", "rel/dir", "../up", "/a/.done"}
	names := []string{"f", "a/b/c.bin", ".hidden", "a/.done/x", "", ".", "..", "../x", "a/../b", "a/./b", "a//b", "a/", "/abs",
		"./x", "x/..", "x/.", "...", "..a", "a..", "日本/ü.txt", "a\\b", " sp ace"}
	for _, d := range dirs {
		for _, n := range names {
			if got, want := under(d, n), filepath.Join(d, n); got != want {
				t.Errorf("under(%q, %q) = %q, want %q", d, n, got, want)
			}
		}
	}
}

// The folders kept for the last session are the Layout's, and follow a
// change of session or date.
func TestDirsOfFollowsTheSession(t *testing.T) {
	p, l := benchPipeline(t)
	for _, it := range []*Item{{Date: "20260101", Session: "a"}, {Date: "20260101", Session: "a"}, {Date: "20260101", Session: "b"}, {Date: "20260102", Session: "b"}, {Date: "20260101", Session: "a"}} {
		d := p.dirsOf(it)
		if d.incoming != l.IncomingDir(it.Session) || d.processing != l.ProcessingDir(it.Date, it.Session) || d.done != l.DoneDir(it.Date, it.Session) {
			t.Fatalf("%s/%s: %+v", it.Date, it.Session, d)
		}
	}
}
