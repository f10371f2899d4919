package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
	"github.com/edge/nfs-watcher-uploader/internal/nfsfault"
)

// Azure refusing every upload for a while: a file waiting for its retry
// holds no staging copy, so staging never holds more than the files being
// worked on (before, every failed attempt left its copy behind and a long
// outage filled the staging disk). Once Azure is back everything uploads
// and staging is empty.
func TestFailedAttemptsLeaveNoStagingCopy(t *testing.T) {
	const size, files, workers = 3 << 20, 8, 4
	s, p := newProxiedSvc(t)
	s.env["APP_WORKER_CONCURRENCY"] = fmt.Sprint(workers)
	s.start()
	p.SetRule(func(r *http.Request) faultproxy.Action {
		if r.Method == http.MethodPut {
			return faultproxy.Fail403
		}
		return faultproxy.Pass
	})
	in, date := s.startSession("outage")
	peak := sample(func() int64 { return stagingBytes(s.staging()) })
	want := map[string]string{}
	for i := range files {
		name := fmt.Sprintf("f%d.bin", i)
		want[date+"/outage/"+name] = writeFile(t, in, name, randomBytes(t, size, byte(i)))
	}
	eventually(t, 30*time.Second, "every file failed at least twice", func() bool {
		_, m := s.get("/v1/status")
		return num(m, "files_failed") >= 2*files && num(m, "retrying") == files
	})
	p.SetRule(nil)
	waitBlobs(t, s.container(), want, 60*time.Second)
	s.waitNFSEmpty("outage")
	if max := peak.done(); max > workers*size {
		t.Fatalf("staging held %d bytes during the outage; at most %d files are worked on at once (%d bytes)", max, workers, workers*size)
	}
	if n := stagingBytes(s.staging()); n != 0 {
		t.Fatalf("staging holds %d bytes after every upload", n)
	}
}

// Staging copies left by a crash are removed at start-up: nothing else
// would ever delete them.
func TestStagingLeftoversRemovedAtStart(t *testing.T) {
	s := newSvc(t)
	junk := filepath.Join(s.staging(), "20250101", "crashed", "half-copied.bin")
	if err := os.MkdirAll(filepath.Dir(junk), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, bytes.Repeat([]byte("x"), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start()
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Fatalf("staging leftover still there after start-up: %v", err)
	}
}

// A producer that pauses longer than the minimum age and then appends
// through its open file: the claimed file has changed since it was
// staged, so it is uploaded again, never completed and deleted with its
// last bytes missing. Both staging paths (memory and file).
func TestBytesAppendedAfterStagingAreUploaded(t *testing.T) {
	for _, size := range []int{100, 3 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s, p := newProxiedSvc(t)
			s.start()
			holdPuts(p)
			in, date := s.startSession("appender")
			f, err := os.Create(filepath.Join(in, "log.bin"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			first := randomBytes(t, size, 1)
			if _, err := f.Write(first); err != nil {
				t.Fatal(err)
			}
			// Claimed, staged and its upload on the wire (held).
			eventually(t, 20*time.Second, "upload of the first bytes held", func() bool { return p.Hanging.Load() > 0 })
			more := []byte("appended after the copy was made")
			if _, err := f.Write(more); err != nil {
				t.Fatal(err)
			}
			f.Close()
			p.Release()
			waitBlobs(t, s.container(), map[string]string{date + "/appender/log.bin": sha(append(first, more...))}, 20*time.Second)
			s.waitNFSEmpty("appender")
		})
	}
}

// A file left in .processing that no worker holds (a claim whose reply
// was lost: ENOENT although the rename happened) is found by the sweep
// and uploaded without a restart.
func TestStrandedFileIsSwept(t *testing.T) {
	s := newSvc(t).start()
	_, date := s.startSession("stranded")
	data := []byte("claimed, but the claim's reply was lost")
	writeFile(t, filepath.Join(s.processing(), date, "stranded"), "lost-reply.bin", data)
	waitBlobs(t, s.container(), map[string]string{date + "/stranded/lost-reply.bin": sha(data)}, 20*time.Second)
	s.waitNFSEmpty("stranded")
}

// The completion rename answering ENOENT while the file is still there is
// not a completion: the step is retried, the file is counted once and
// leaves NFS.
func TestCompleteENOENTWithFileStillThere(t *testing.T) {
	s, f := fuseSvc(t)
	p := proxyAzure(t, s)
	s.start()
	holdPuts(p)
	in, date := s.startSession("enoent")
	data := []byte("uploaded, then the rename into .done says ENOENT")
	want := map[string]string{date + "/enoent/e.bin": writeFile(t, in, "e.bin", data)}
	eventually(t, 20*time.Second, "upload held", func() bool { return p.Hanging.Load() > 0 })
	f.Fail(nfsfault.Rename, "e.bin", syscall.ENOENT, 4)
	p.Release()
	waitBlobs(t, s.container(), want, 20*time.Second)
	s.waitNFSEmpty("enoent")
	if f.Hits(nfsfault.Rename) < 4 {
		t.Fatalf("only %d rename faults hit: the test did not exercise the completion", f.Hits(nfsfault.Rename))
	}
	st := s.status()
	if num(st, "files_processed") != 1 {
		t.Fatalf("files_processed %d, want 1", num(st, "files_processed"))
	}
	if strings.Contains(s.logs.String(), "already gone from processing") {
		t.Fatal("a completion was assumed while the file was still in processing")
	}
}

// EACCES on the claim's rename is permanent (an operator must fix the
// export's ownership); the file is kept and uploaded once fixed.
func TestEACCESOnClaimIsPermanent(t *testing.T) {
	s, f := fuseSvc(t)
	s.start()
	in, date := s.startSession("eacces")
	f.Fail(nfsfault.Rename, "locked.bin", syscall.EACCES, 1000)
	want := map[string]string{date + "/eacces/locked.bin": writeFile(t, in, "locked.bin", []byte("locked"))}
	waitPermanent(t, s, "claim")
	f.Clear()
	waitBlobs(t, s.container(), want, 20*time.Second)
	s.waitNFSEmpty("eacces")
	if st := s.status(); len(st["failing"].([]any)) != 0 || num(st, "retrying") != 0 {
		t.Fatalf("status still lists the uploaded file: failing %v, retrying %v", st["failing"], st["retrying"])
	}
}

// A file that vanishes from .processing before it was ever read is not
// taken for uploaded because an older blob of the same name exists.
func TestVanishedFileIsNotTakenForAnOlderBlob(t *testing.T) {
	s, f := fuseSvc(t)
	s.start()
	in, date := s.startSession("vanish")
	// The older version is put in the container directly: uploading it through
	// the mount first could let v2 reuse v1's inode, which the fault rules
	// then no longer know by name.
	if _, err := azc.UploadBuffer(context.Background(), s.container(), date+"/vanish/v.bin", []byte("version 1"), nil); err != nil {
		t.Fatal(err)
	}
	release := f.Hang(nfsfault.Open, "v.bin")
	writeFile(t, in, "v.bin", []byte("version 2, gone before it was read"))
	eventually(t, 20*time.Second, "open of the claimed file held", func() bool { return f.Hung() > 0 })
	backing := filepath.Join(s.root, "backing", ".processing", date, "vanish", "v.bin")
	if err := os.Remove(backing); err != nil {
		t.Fatal(err)
	}
	release()
	eventually(t, 20*time.Second, "the file reported vanished", func() bool { return num(s.status(), "files_vanished") == 1 })
}

// queue_depth never passes APP_MAX_QUEUE_SIZE, even while the watcher and
// retries wait for room.
func TestQueueDepthStaysWithinItsCap(t *testing.T) {
	s, p := newProxiedSvc(t)
	s.env["APP_MAX_QUEUE_SIZE"] = "2"
	s.env["APP_WORKER_CONCURRENCY"] = "1"
	s.start()
	holdPuts(p)
	in, date := s.startSession("cap")
	depth := sample(func() int64 {
		_, m := s.get("/v1/status")
		return num(m, "queue_depth")
	})
	want := map[string]string{}
	for i := range 8 {
		name := fmt.Sprintf("q%d.bin", i)
		want[date+"/cap/"+name] = writeFile(t, in, name, fmt.Appendf(nil, "queued %d", i))
	}
	eventually(t, 20*time.Second, "the queue full", func() bool { return num(s.status(), "queue_depth") == 2 })
	p.Release()
	waitBlobs(t, s.container(), want, 20*time.Second)
	if max := depth.done(); max > 2 {
		t.Fatalf("queue_depth reached %d with APP_MAX_QUEUE_SIZE=2", max)
	}
}

// skipped lists every entry left in place, logs each once however many
// there are, and forgets a session's entries when it stops.
func TestSkippedEntriesAreCountedLoggedAndDropped(t *testing.T) {
	s := newSvc(t).start()
	in, _ := s.startSession("links")
	const n = 520
	for i := range n {
		if err := os.Symlink("/etc/passwd", filepath.Join(in, fmt.Sprintf("link-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "every link listed as skipped", func() bool { return num(s.status(), "files_skipped") == n })
	logged := 0
	for _, l := range s.logs.lines() {
		if l["msg"] == "incoming entry left in place" {
			logged++
		}
	}
	if logged != n {
		t.Fatalf("%d skipped entries logged, want %d", logged, n)
	}
	if st := s.status(); len(st["skipped"].([]any)) == 0 {
		t.Fatal("skipped list empty")
	}
	if code, _ := s.post("/v1/watch/stop", ""); code != http.StatusOK {
		t.Fatalf("stop: %d", code)
	}
	eventually(t, 10*time.Second, "skipped dropped after stop", func() bool {
		st := s.status()
		return num(st, "files_skipped") == 0 && len(st["skipped"].([]any)) == 0
	})
}

// A container deleted while the service runs is created again by the
// next upload instead of failing permanently until a restart.
func TestDeletedContainerIsRecreated(t *testing.T) {
	s := newSvc(t).start()
	in, date := s.startSession("recreate")
	first := writeFile(t, in, "before.bin", []byte("before"))
	waitBlobsContain(t, s.container(), date+"/recreate/before.bin", first)
	if _, err := azc.DeleteContainer(context.Background(), s.container(), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "container gone", func() bool {
		_, err := azc.ServiceClient().NewContainerClient(s.container()).GetProperties(context.Background(), nil)
		return bloberror.HasCode(err, bloberror.ContainerNotFound)
	})
	want := map[string]string{date + "/recreate/after.bin": writeFile(t, in, "after.bin", []byte("after"))}
	waitBlobs(t, s.container(), want, 20*time.Second)
}

// EACCES on the completion rename is permanent too: the blob is confirmed
// but the file stays in processing, listed as failing, until the export is
// fixed; then it completes and leaves NFS.
func TestEACCESOnCompleteIsPermanent(t *testing.T) {
	s, f := fuseSvc(t)
	p := proxyAzure(t, s)
	s.start()
	holdPuts(p)
	in, date := s.startSession("eacces-done")
	want := map[string]string{date + "/eacces-done/d.bin": writeFile(t, in, "d.bin", []byte("uploaded, then refused a rename"))}
	eventually(t, 20*time.Second, "upload held", func() bool { return p.Hanging.Load() > 0 })
	f.Fail(nfsfault.Rename, "d.bin", syscall.EACCES, -1)
	p.Release()
	waitPermanent(t, s, "complete")
	if _, err := os.Stat(filepath.Join(s.processing(), date, "eacces-done", "d.bin")); err != nil {
		t.Fatalf("the file left processing while its completion was refused: %v", err)
	}
	f.Clear()
	waitBlobs(t, s.container(), want, 20*time.Second)
	s.waitNFSEmpty("eacces-done")
}

// A session folder in the processing root that cannot be read at start-up
// (EIO) is reported and skipped: the process serves, the other session's
// files are recovered, and the folder's files are uploaded once it reads.
func TestUnreadableSessionFolderIsSkippedAtRecovery(t *testing.T) {
	s, f := fuseSvc(t)
	date := time.Now().UTC().Format("20060102")
	for _, sess := range []string{"good", "bad"} {
		dir := filepath.Join(s.root, "backing", ".processing", date, sess)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, sess+".bin", []byte("left by a crash in "+sess))
	}
	f.Fail(nfsfault.Readdir, "bad", syscall.EIO, -1)
	s.start()
	waitBlobsContain(t, s.container(), date+"/good/good.bin", sha([]byte("left by a crash in good")))
	eventually(t, 10*time.Second, "the unreadable folder in last_error", func() bool {
		le, _ := s.status()["last_error"].(map[string]any)
		return le != nil && strings.HasSuffix(le["file"].(string), filepath.Join(date, "bad"))
	})
	eventually(t, 10*time.Second, "an ERROR log line naming the unreadable folder", func() bool {
		for _, l := range s.logs.lines() {
			if l["level"] == "ERROR" && l["step"] == "recovery" && strings.Contains(fmt.Sprint(l["dir"]), "bad") {
				return true
			}
		}
		return false
	})
	f.Clear()
	waitBlobsContain(t, s.container(), date+"/bad/bad.bin", sha([]byte("left by a crash in bad")))
}

// waitPermanent waits until status lists a permanent failure at step.
func waitPermanent(t *testing.T, s *svc, step string) {
	t.Helper()
	eventually(t, 20*time.Second, "a permanent failure at the "+step+" step", func() bool {
		for _, e := range s.status()["failing"].([]any) {
			if m := e.(map[string]any); m["step"] == step && m["permanent"] == true {
				return true
			}
		}
		return false
	})
}
