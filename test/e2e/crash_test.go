package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

var (
	crashKills = flag.Int("crash.kills", 50, "SIGKILLs in TestCrashSafety")
	crashFiles = flag.Int("crash.files", 300, "files in TestCrashSafety")
	crashSeed  = flag.Uint64("crash.seed", 0, "random seed for TestCrashSafety (0: from the clock)")
)

// blobETags lists the container: name -> ETag.
func blobETags(t *testing.T, container string) map[string]string {
	t.Helper()
	out := map[string]string{}
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
			out[*b.Name] = string(*b.Properties.ETag)
		}
	}
	return out
}

// storedSHA is the SHA-256 of the blob's bytes ("" when there is none),
// downloaded once per version (ETag); the service is dead while it runs.
func storedSHA(t *testing.T, container, name, etag string, cache map[string]string) string {
	t.Helper()
	if etag == "" {
		return ""
	}
	if sum, ok := cache[etag]; ok {
		return sum
	}
	resp, err := azc.DownloadStream(context.Background(), container, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	cache[etag] = hex.EncodeToString(h.Sum(nil))
	return cache[etag]
}

// hasStagedBlocks reports whether a blob has uncommitted blocks.
func hasStagedBlocks(t *testing.T, container, name string) bool {
	t.Helper()
	bb := azc.ServiceClient().NewContainerClient(container).NewBlockBlobClient(name)
	resp, err := bb.GetBlockList(context.Background(), blockblob.BlockListTypeUncommitted, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return false
		}
		t.Fatal(err)
	}
	return len(resp.UncommittedBlocks) > 0
}

// singlePut is the crash test's APP_AZURE_MAX_SINGLE_PUT_SIZE: small, so
// many files go as blocks, and a kill between blocks leaves some to reuse.
const singlePut = 64 << 10

// crashSize picks a file size: mostly small (one Put Blob, staged in
// memory), some up to 1 MiB (blocks), some 1-3 MiB (a staging file, blocks).
func crashSize(rng *rand.Rand) int {
	switch r := rng.IntN(100); {
	case r < 80:
		return rng.IntN(singlePut)
	case r < 92:
		return singlePut + rng.IntN(1<<20-singlePut)
	default:
		return 1<<20 + 1 + rng.IntN(2<<20)
	}
}

// TestCrashSafety runs the real binary over a few hundred files and kills it
// with SIGKILL at random moments, restarting it each time. After every kill
// (the process is gone, so NFS is still) no file may have left NFS or been
// marked completed unless its blob holds its bytes; at the end every file is
// in the container with its exact bytes. At full scale: make chaos.
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
	s.env["APP_AZURE_MAX_SINGLE_PUT_SIZE"] = strconv.Itoa(singlePut)
	s.env["APP_AZURE_MAX_BLOCK_SIZE"] = "32768"
	s.env["APP_AZURE_MAX_CONCURRENCY"] = "4"
	s.start()
	in, date := s.startSession("crash")

	type source struct {
		key  string
		sha  string
		size int
	}
	var files []source
	staged, blocked := 0, 0 // files over 1 MiB (a staging file), others over singlePut
	write := func(n int) {
		for range n {
			if len(files) >= *crashFiles {
				return
			}
			name := fmt.Sprintf("c%05d.bin", len(files))
			data := make([]byte, crashSize(rng))
			for i := 0; i < len(data); i += 8 {
				var w [8]byte
				binary.LittleEndian.PutUint64(w[:], rng.Uint64())
				copy(data[i:], w[:])
			}
			switch {
			case len(data) > 1<<20:
				staged++
			case len(data) > singlePut:
				blocked++
			}
			files = append(files, source{key: date + "/crash/" + name, sha: writeFile(t, in, name, data), size: len(data)})
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
	shas := map[string]string{}                        // ETag -> SHA-256 of the blob's bytes, each version read once
	leftBlocks := 0                                    // files a kill left with staged blocks, for the restart to reuse
	perKill := max(1, *crashFiles/max(1, *crashKills)) // -crash.kills=0: no kills, every file at the end
	for k := range *crashKills {
		write(perKill + 1)
		// A random moment: scanning, claiming, staging, uploading, completing or in GC.
		select {
		case <-time.After(time.Duration(rng.IntN(250)) * time.Millisecond):
		case <-s.exited:
			t.Fatalf("service exited by itself: %v", s.exitErr)
		}
		s.kill()
		etags := blobETags(t, s.container())
		for _, f := range files {
			if st := where(f); (st == "gone" || st == "done") && storedSHA(t, s.container(), f.key, etags[f.key], shas) != f.sha {
				deletedUnuploaded++
				t.Errorf("kill %d: %s is %s on NFS but its blob is missing or different", k+1, f.key, st)
			}
		}
		for _, f := range files {
			if f.size > singlePut && where(f) == "processing" && hasStagedBlocks(t, s.container(), f.key) {
				leftBlocks++
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
	t.Logf("%d times a kill left a file with staged, uncommitted blocks", leftBlocks)
	t.Logf("%d files over 1 MiB (staging files, blocks), %d more over %d bytes (blocks)", staged, blocked, singlePut)
	if recovered == 0 && *crashKills > 0 {
		t.Error("no kill caught a file in flight: the test proved nothing")
	}
	if lost+corrupt+deletedUnuploaded == 0 {
		s.waitNFSEmpty("crash")
	}
}
