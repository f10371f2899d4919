package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

var (
	crashKills = flag.Int("crash.kills", 50, "SIGKILLs in TestCrashSafety")
	crashFiles = flag.Int("crash.files", 300, "files in TestCrashSafety")
	crashSeed  = flag.Uint64("crash.seed", 0, "random seed for TestCrashSafety (0: from the clock)")
)

// blobMD5s lists the container: name -> stored Content-MD5.
func blobMD5s(t *testing.T, container string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	pager := azc.NewListBlobsFlatPager(container, nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			if bloberror.HasCode(err, bloberror.ContainerNotFound) {
				return out
			}
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			out[*b.Name] = b.Properties.ContentMD5
		}
	}
	return out
}

// TestCrashSafety runs the real binary over a few hundred files and kills it
// with SIGKILL at random moments, restarting it each time. After every kill
// (the process is gone, so NFS is still) no file may have left NFS or been
// marked completed unless its blob holds its bytes; at the end every file is
// in the container with its exact bytes. More kills:
//
//	go test ./test/e2e -run CrashSafety -args -crash.kills=500 -crash.files=2000
func TestCrashSafety(t *testing.T) {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d (rerun with -args -crash.seed=%d)", seed, seed)

	s := newSvc(t)
	s.env["APP_POLL_INTERVAL_S"] = "0.05"
	s.env["APP_MIN_FILE_AGE_S"] = "0"
	s.env["APP_AZURE_MAX_SINGLE_PUT_SIZE"] = "65536"
	s.env["APP_AZURE_MAX_BLOCK_SIZE"] = "16384"
	s.env["APP_AZURE_MAX_CONCURRENCY"] = "4"
	s.start()
	in, date := s.startSession("crash")

	type source struct {
		key string
		md5 []byte
		sha string
	}
	var files []source
	write := func(n int) {
		for range n {
			if len(files) >= *crashFiles {
				return
			}
			name := fmt.Sprintf("c%05d.bin", len(files))
			data := make([]byte, rng.IntN(200_000))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			sum := md5.Sum(data)
			files = append(files, source{key: date + "/crash/" + name, md5: sum[:], sha: writeFile(t, in, name, data)})
		}
	}
	// Where a file is on NFS right now (the process is dead: nothing moves).
	where := func(f source) string {
		name := filepath.Base(f.key)
		for _, p := range []struct{ dir, state string }{
			{in, "incoming"},
			{filepath.Join(s.processing(), date, "crash"), "processing"},
			{filepath.Join(s.processing(), date, "crash", ".done"), "done"},
		} {
			if _, err := os.Lstat(filepath.Join(p.dir, name)); err == nil {
				return p.state
			}
		}
		return "gone"
	}
	deletedUnuploaded, recovered := 0, 0
	perKill := max(1, *crashFiles / *crashKills)
	for k := range *crashKills {
		write(perKill + 1)
		// A random moment: scanning, claiming, staging, uploading, completing or in GC.
		select {
		case <-time.After(time.Duration(rng.IntN(250)) * time.Millisecond):
		case <-s.exited:
			t.Fatalf("service exited by itself: %v", s.exitErr)
		}
		s.kill()
		stored := blobMD5s(t, s.container())
		for _, f := range files {
			if st := where(f); (st == "gone" || st == "done") && !bytes.Equal(stored[f.key], f.md5) {
				deletedUnuploaded++
				t.Errorf("kill %d: %s is %s on NFS but its blob is missing or different", k+1, f.key, st)
			}
		}
		s.start()
		for _, l := range s.logs.lines() {
			if l["msg"] == "recovered unfinished files" {
				recovered += int(l["files"].(float64))
			}
		}
		if st := s.status(); st["session"] != "crash" || st["active"] != true {
			t.Fatalf("kill %d: the session was not resumed: %v", k+1, st)
		}
	}
	write(*crashFiles)

	want := map[string]string{}
	for _, f := range files {
		want[f.key] = f.sha
	}
	deadline := time.Now().Add(120 * time.Second)
	var got map[string]string
	for {
		got = blobs(t, s.container())
		if mapsEqual(got, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	lost, corrupt := 0, 0
	for _, f := range files {
		switch sum, ok := got[f.key]; {
		case !ok:
			lost++
			t.Errorf("lost: %s (on NFS: %s)", f.key, where(f))
		case sum != f.sha:
			corrupt++
			t.Errorf("corrupt: %s", f.key)
		}
	}
	line := fmt.Sprintf("%d kills, %d files, %d lost, %d corrupt, %d deleted-unuploaded", *crashKills, len(files), lost, corrupt, deletedUnuploaded)
	fmt.Println(line)
	t.Log(line)
	t.Logf("%d files were recovered from .processing across the restarts", recovered)
	if recovered == 0 {
		t.Error("no kill caught a file in flight: the test proved nothing")
	}
	if lost+corrupt+deletedUnuploaded == 0 {
		s.waitNFSEmpty("crash")
	}
}
