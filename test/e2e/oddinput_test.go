package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/procstat"
)

// stays asserts that path still exists after the service had many polls
// (and a control file written alongside was uploaded meanwhile).
func stays(t *testing.T, s *svc, in, date, session string, paths ...string) {
	t.Helper()
	sum := writeFile(t, in, "control.txt", []byte("control "+session))
	waitBlobsContain(t, s.container(), date+"/"+session+"/control.txt", sum)
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was taken or removed: %v", p, err)
		}
	}
}

func skippedReasons(st map[string]any) map[string]string {
	out := map[string]string{}
	list, _ := st["skipped"].([]any)
	for _, e := range list {
		m := e.(map[string]any)
		out[m["file"].(string)] = m["reason"].(string)
	}
	return out
}

// SPEC §7: only regular files are taken; a symlink (even to /etc/passwd)
// and a FIFO are left in place and reported in status. A folder is entered:
// its files are uploaded under their relative path.
func TestOnlyRegularFilesAreTaken(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("types")
	link := filepath.Join(in, "passwd")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(in, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(in, "subdir")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	nested := writeFile(t, sub, "nested.txt", []byte("nested"))
	stays(t, s, in, date, "types", link, fifo, sub)
	waitBlobs(t, s.container(), map[string]string{
		date + "/types/control.txt":       sha([]byte("control types")),
		date + "/types/subdir/nested.txt": nested,
	}, 10*time.Second)
	reasons := skippedReasons(s.status())
	for _, name := range []string{"passwd", "pipe"} {
		if reasons[date+"/types/"+name] == "" {
			t.Errorf("%s not reported in status skipped: %v", name, reasons)
		}
	}
	if r := reasons[date+"/types/subdir"]; r != "" {
		t.Errorf("a folder reported as skipped: %q", r)
	}
}

// SPEC §7: names starting with "." are producers' temp files: never taken;
// once renamed into place the file is uploaded.
func TestDotFilesAreNeverTaken(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("dots")
	tmp := filepath.Join(in, ".data.bin.Xa81")
	sum := writeFile(t, in, ".data.bin.Xa81", []byte("being written by rsync"))
	stays(t, s, in, date, "dots", tmp)
	if err := os.Rename(tmp, filepath.Join(in, "data.bin")); err != nil {
		t.Fatal(err)
	}
	waitBlobsContain(t, s.container(), date+"/dots/data.bin", sum)
	if _, ok := blobs(t, s.container())[date+"/dots/.data.bin.Xa81"]; ok {
		t.Fatal("dot file uploaded")
	}
}

// SPEC §7: a producer file named like a completion marker is uploaded like
// any other and never deleted unuploaded.
func TestMarkerLikeNamesAreOrdinaryFiles(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("markers")
	want := map[string]string{}
	for _, name := range []string{"report.completed", "report", "x.done", "done", "x.completed.completed"} {
		want[date+"/markers/"+name] = writeFile(t, in, name, []byte("content of "+name))
	}
	waitBlobs(t, s.container(), want, 20*time.Second)
	s.waitNFSEmpty("markers")
	if n := num(s.status(), "files_processed"); n != 5 {
		t.Fatalf("files_processed %d", n)
	}
}

// SPEC §7: names with spaces, #, %, ?, +, unicode upload
// under exactly that name; zero-byte files become empty blobs.
func TestOddNamesAndEmptyFiles(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("names")
	want := map[string]string{}
	for _, name := range []string{"with space.txt", "hash#tag", "100%.csv", "what?.txt", "a+b=c", "ünïcødé-日本.bin",
		"semi;colon&amp", "trailing-space ", strings.Repeat("n", 200)} {
		want[date+"/names/"+name] = writeFile(t, in, name, []byte("bytes of "+name))
	}
	want[date+"/names/empty.dat"] = writeFile(t, in, "empty.dat", nil)
	waitBlobs(t, s.container(), want, 20*time.Second)
	s.waitNFSEmpty("names")
}

// issue: a name that is not valid UTF-8 cannot be a blob name: reported
// and left in place, not crashed on or silently skipped.
func TestNonUTF8NameIsReportedAndLeft(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("latin1")
	bad := filepath.Join(in, "caf\xe9.txt")
	if err := os.WriteFile(bad, []byte("latin-1 name"), 0o644); err != nil {
		t.Fatal(err)
	}
	stays(t, s, in, date, "latin1", bad)
	if r := skippedReasons(s.status())[date+`/latin1/caf\xe9.txt`]; !strings.Contains(r, "UTF-8") {
		t.Fatalf("not reported: %v", skippedReasons(s.status()))
	}
}

// SPEC §7: a file still being written (growing, mtime moving) is not taken
// until stable; the blob has every byte.
func TestGrowingFileWaitsUntilStable(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("grow")
	p := filepath.Join(in, "growing.log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	// Write for well over MIN_FILE_AGE_S and many poll intervals.
	end := time.Now().Add(1500 * time.Millisecond)
	for i := 0; time.Now().Before(end); i++ {
		if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("growing file taken while being written: %v", err)
		}
		time.Sleep(30 * time.Millisecond) // the producer's pace, not synchronisation
	}
	f.Close()
	waitBlobsContain(t, s.container(), date+"/grow/growing.log", hex.EncodeToString(h.Sum(nil)))
}

// SPEC §7: the same name written again while the first is in flight does
// not replace the in-flight copy; it is uploaded after it, so the blob
// ends with the newer bytes and nothing is deleted unuploaded.
func TestSameNameRewrittenWhileInFlight(t *testing.T) {
	s, p := newProxiedSvc(t)
	s.start()
	in, date := s.startSession("again")
	holdPuts(p)
	writeFile(t, in, "a.bin", []byte("version one"))
	eventually(t, 10*time.Second, "first version in flight", func() bool { return p.Hanging.Load() == 1 })
	newer := writeFile(t, in, "a.bin", []byte("version two, longer"))
	claimed := filepath.Join(s.processing(), date, "again", "a.bin")
	// Several polls pass; the in-flight copy must keep its bytes.
	for range 10 {
		time.Sleep(50 * time.Millisecond) // let polls happen; the assertion is on state, not timing
		b, err := os.ReadFile(claimed)
		if err != nil || string(b) != "version one" {
			t.Fatalf("in-flight copy replaced: %q %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(in, "a.bin")); err != nil {
			t.Fatalf("second version taken while the first is in flight: %v", err)
		}
	}
	p.Release()
	eventually(t, 20*time.Second, "two uploads", func() bool { return num(s.status(), "files_processed") == 2 })
	waitBlobs(t, s.container(), map[string]string{date + "/again/a.bin": newer}, 10*time.Second)
	s.waitNFSEmpty("again")
}

func TestExtensionFilter(t *testing.T) {
	s := newSvc(t)
	s.env["APP_FILE_EXTENSIONS"] = ".bin, dat"
	s.start()
	in, date := s.startSession("ext")
	want := map[string]string{
		date + "/ext/a.bin": writeFile(t, in, "a.bin", []byte("a")),
		date + "/ext/b.dat": writeFile(t, in, "b.dat", []byte("b")),
	}
	writeFile(t, in, "c.txt", []byte("c"))
	waitBlobs(t, s.container(), want, 20*time.Second)
	if _, err := os.Stat(filepath.Join(in, "c.txt")); err != nil {
		t.Fatalf("filtered file was taken: %v", err)
	}
}

func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := procstat.PeakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
