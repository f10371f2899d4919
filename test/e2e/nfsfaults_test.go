package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/nfsfault"
)

// fuseSvc prepares a service whose NFS folder is a fault-injecting FUSE
// loopback; it skips where FUSE cannot be mounted.
func fuseSvc(t *testing.T) (*svc, *nfsfault.FS) {
	t.Helper()
	if err := nfsfault.Available(); err != nil {
		t.Skipf("NFS fault tests need FUSE: %v", err)
	}
	s := newSvc(t)
	backing, mnt := filepath.Join(s.root, "backing"), filepath.Join(s.root, "nfs")
	for _, d := range []string{backing, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := nfsfault.Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	// Registered before start, so it runs after the process is killed.
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return s, f
}

// Transient NFS errors at every step: the scan backs off and goes on, the
// claim skips stale handles, stage and complete retry; every file ends in
// the container with its bytes and leaves NFS.
func TestNFSErrorsAtEveryStep(t *testing.T) {
	s, f := fuseSvc(t)
	s.start()
	in, date := s.startSession("nfs")
	type fault struct {
		op    nfsfault.Op
		name  string
		errno syscall.Errno
		n     int
	}
	faults := []fault{
		{nfsfault.Readdir, "nfs", syscall.EIO, 3},       // scan of the session folder
		{nfsfault.Lookup, "f01.bin", syscall.ESTALE, 4}, // lstat in the scan / lookup in the claim
		{nfsfault.Getattr, "f02.bin", syscall.EIO, 2},   // stat of a known file
		{nfsfault.Rename, "f03.bin", syscall.ESTALE, 2}, // claim: someone else has it, skip
		{nfsfault.Rename, "f04.bin", syscall.EIO, 3},    // claim or complete: retried
		{nfsfault.Open, "f05.bin", syscall.EIO, 2},      // stage: open
		{nfsfault.Open, "f06.bin", syscall.ESTALE, 4},   // stage: open
		{nfsfault.Read, "f07.bin", syscall.EIO, 3},      // stage: read
		{nfsfault.Unlink, "f08.bin", syscall.EIO, 2},    // GC
	}
	for _, x := range faults {
		f.Fail(x.op, x.name, x.errno, x.n)
	}
	// The producer is another NFS client: its writes do not go through the faults.
	producer := filepath.Join(s.root, "backing", "incoming", "nfs")
	want := map[string]string{}
	for i := range 10 {
		name := fmt.Sprintf("f%02d.bin", i)
		want[date+"/nfs/"+name] = writeFile(t, producer, name, []byte(strings.Repeat(name, 2000+i)))
	}
	_ = in
	// The guard looks past the faults too, at the backing folders.
	stop := guardNFS(t, s, []string{producer, filepath.Join(s.root, "backing", ".processing")}, want)
	waitBlobs(t, s.container(), want, 60*time.Second)
	s.waitNFSEmpty("nfs")
	stop()
	for _, x := range faults {
		if f.Hits(x.op) == 0 {
			t.Errorf("no %s fault was delivered", x.op)
		}
	}
	st := s.status()
	if num(st, "files_processed") != 10 || num(st, "retrying") != 0 || num(st, "files_vanished") != 0 {
		t.Fatalf("status: %v", st)
	}
	scanFailed, gcFailed := false, false
	for _, l := range s.logs.lines() {
		scanFailed = scanFailed || l["msg"] == "scan failed; backing off"
		gcFailed = gcFailed || l["msg"] == "cannot delete a completed file" && l["file"] == "f08.bin" && l["session"] == "nfs" && l["step"] == "gc"
	}
	if !scanFailed || !gcFailed {
		t.Errorf("failed scans logged: %v; failed GC deletion logged with session, file and step: %v", scanFailed, gcFailed)
	}
}

// A hung NFS call blocks only the worker that made it: other files flow,
// and the probes and status answer at once.
func TestHungNFSReadBlocksOnlyItsWorker(t *testing.T) {
	s, f := fuseSvc(t)
	s.start()
	in, date := s.startSession("hang")
	release := f.Hang(nfsfault.Read, "stuck.bin")
	defer release()
	stuck := writeFile(t, in, "stuck.bin", []byte("held by a hung read"))
	eventually(t, 10*time.Second, "a read hanging", func() bool { return f.Hung() == 1 })
	want := map[string]string{}
	for i := range 6 {
		name := fmt.Sprintf("ok%d.bin", i)
		want[date+"/hang/"+name] = writeFile(t, in, name, []byte(name))
	}
	waitBlobs(t, s.container(), want, 20*time.Second)
	answersAtOnce(t, s)
	if st := s.status(); num(st, "in_flight") != 1 || num(st, "files_processed") != 6 {
		t.Fatalf("status while hung: %v", st)
	}
	release()
	want[date+"/hang/stuck.bin"] = stuck
	waitBlobs(t, s.container(), want, 20*time.Second)
	s.waitNFSEmpty("hang")
}

// A scan stuck in a hung readdir leaves the API answering.
func TestHungScanLeavesTheAPIAnswering(t *testing.T) {
	s, f := fuseSvc(t)
	s.start()
	in, date := s.startSession("hscan")
	release := f.Hang(nfsfault.Readdir, "hscan")
	defer release()
	eventually(t, 10*time.Second, "the scan hanging", func() bool { return f.Hung() >= 1 })
	answersAtOnce(t, s)
	release()
	sum := writeFile(t, in, "after.bin", []byte("after the hang"))
	waitBlobsContain(t, s.container(), date+"/hscan/after.bin", sum)
}

// A file the service may not read is a permanent failure: loud, listed,
// retried slowly, and uploaded once fixed. (Root reads anything, so the
// check runs the fault through the FUSE layer as EACCES.)
func TestUnreadableFileIsPermanentAndKept(t *testing.T) {
	s, f := fuseSvc(t)
	s.start()
	in, date := s.startSession("perm")
	f.Fail(nfsfault.Open, "locked.bin", syscall.EACCES, -1)
	sum := writeFile(t, in, "locked.bin", []byte("cannot be read yet"))
	eventually(t, 20*time.Second, "a permanent failure listed", func() bool {
		fl, _ := s.status()["failing"].([]any)
		return len(fl) == 1 && fl[0].(map[string]any)["permanent"] == true && fl[0].(map[string]any)["step"] == "stage"
	})
	if _, err := os.Stat(filepath.Join(s.processing(), date, "perm", "locked.bin")); err != nil {
		t.Fatalf("the unreadable file is not kept in .processing: %v", err)
	}
	f.Clear()
	waitBlobsContain(t, s.container(), date+"/perm/locked.bin", sum)
	s.waitNFSEmpty("perm")
}

// answersAtOnce asserts that the probes and status answer 200 within a
// second while an NFS call hangs.
func answersAtOnce(t *testing.T, s *svc) {
	t.Helper()
	fast := &http.Client{Timeout: time.Second}
	for _, path := range []string{"/healthz", "/readyz", "/v1/status"} {
		start := time.Now()
		resp, err := fast.Get("http://" + s.addr + path)
		if err != nil {
			t.Fatalf("%s while NFS hangs: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s while NFS hangs: %d", path, resp.StatusCode)
		}
		t.Logf("%s answered in %v while NFS hangs", path, time.Since(start))
	}
}
