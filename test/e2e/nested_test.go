package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A three-level tree with odd names at every level is uploaded under each
// file's relative path; dot folders and a symlink to a folder are left
// alone; the producer's folders stay in incoming; the service's own nested
// folders in processing and staging are cleaned away.
func TestNestedFoldersKeepTheirPath(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("tree")
	want := map[string]string{}
	put := func(rel string, data []byte) {
		dir := filepath.Join(in, filepath.Dir(rel))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		want[date+"/tree/"+rel] = writeFile(t, dir, filepath.Base(rel), data)
	}
	put("top.txt", []byte("level 0"))
	put("cam 1/2026-11-27/0001.jpg", []byte("level 2, a space in a folder"))
	put("cam 1/2026-11-27/#%?+ odd/日本語 ñ.csv", []byte("level 3, odd names everywhere"))
	put("a/b/c/deep.bin", randomBytes(t, 2<<20, 3))
	// Left alone: a dot folder (a producer's work area) and a link to a folder.
	hidden := filepath.Join(in, ".partial", "inside.bin")
	if err := os.MkdirAll(filepath.Dir(hidden), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Dir(hidden), "inside.bin", []byte("not yet"))
	outside := t.TempDir()
	writeFile(t, outside, "secret.txt", []byte("outside the session"))
	if err := os.Symlink(outside, filepath.Join(in, "cam 1", "linked")); err != nil {
		t.Fatal(err)
	}
	waitBlobs(t, s.container(), want, 30*time.Second)
	if _, err := os.Stat(hidden); err != nil {
		t.Fatalf("a file in a dot folder was taken: %v", err)
	}
	if r := skippedReasons(s.status())[date+"/tree/cam 1/linked"]; !strings.Contains(r, "symbolic link") {
		t.Fatalf("the folder link is not reported as skipped: %q", r)
	}
	for _, d := range []string{"cam 1/2026-11-27/#%?+ odd", "a/b/c"} {
		if fi, err := os.Stat(filepath.Join(in, d)); err != nil || !fi.IsDir() {
			t.Fatalf("the producer's folder %s was removed: %v", d, err)
		}
	}
	eventually(t, 20*time.Second, "processing and staging emptied of nested folders", func() bool {
		return len(dirsUnder(filepath.Join(s.processing(), date, "tree"))) == 0 &&
			len(dirsUnder(filepath.Join(s.staging(), date, "tree"))) == 0
	})
}

// dirsUnder lists the folders below dir other than .done.
func dirsUnder(dir string) []string {
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() && p != dir && info.Name() != ".done" {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// Folders deeper than 32 levels are not entered and are reported; a blob
// name over 1,024 characters is reported and left in place.
func TestNestedLimits(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("limits")
	parts := make([]string, 33)
	for i := range parts {
		parts[i] = fmt.Sprintf("d%02d", i)
	}
	ok := filepath.Join(append([]string{in}, parts[:32]...)...)
	if err := os.MkdirAll(filepath.Join(ok, parts[32]), 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{date + "/limits/" + strings.Join(parts[:32], "/") + "/at-32.bin": writeFile(t, ok, "at-32.bin", []byte("32 folders deep"))}
	tooDeep := filepath.Join(ok, parts[32])
	writeFile(t, tooDeep, "at-33.bin", []byte("33 folders deep"))
	long := filepath.Join(in, strings.Repeat("x", 250), strings.Repeat("y", 250), strings.Repeat("z", 250), strings.Repeat("w", 250))
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, long, "too-long.bin", []byte("blob name past 1,024 characters"))
	waitBlobs(t, s.container(), want, 20*time.Second)
	reasons := skippedReasons(s.status())
	deepKey := date + "/limits/" + strings.Join(parts, "/")
	if !strings.Contains(reasons[deepKey], "deeper than 32") {
		t.Fatalf("the 33rd folder is not reported: %v", reasons)
	}
	longKey := date + "/limits/" + strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(long, in)), "/") + "/too-long.bin"
	if !strings.Contains(reasons[longKey], "1024 characters") {
		t.Fatalf("the long blob name is not reported: %v", reasons)
	}
	for _, p := range []string{filepath.Join(tooDeep, "at-33.bin"), filepath.Join(long, "too-long.bin")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s was taken: %v", p, err)
		}
	}
}
