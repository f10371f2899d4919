package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A writer whose clock is years behind (every mtime in 2001) appends in
// bursts with pauses longer than a poll but shorter than the minimum age.
// Under the old rule (mtime older than the minimum age, same on two polls)
// the file was claimed after its first chunk.
// The file must stay in incoming until it has been still for the minimum
// age on the service's clock, and the blob must end with every byte.
func TestSlowWriterWithOldMtimes(t *testing.T) {
	s := newSvc(t)
	// Pauses of 0.4 s against a minimum age of 3 s: a wide margin for a
	// loaded machine, and still many polls (0.1 s) between writes.
	s.env["APP_MIN_FILE_AGE_S"] = "3"
	s.start()
	in, date := s.startSession("oldclock")
	path := filepath.Join(in, "slow.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := time.Date(2001, 3, 4, 5, 6, 7, 0, time.UTC)
	var all []byte
	tick := time.NewTicker(400 * time.Millisecond) // the producer's pace
	defer tick.Stop()
	for i := range 8 {
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("claimed while the writer was still writing (after %d chunks): %v", i, err)
		}
		chunk := bytes.Repeat(fmt.Appendf(nil, "chunk %d;", i), 1000)
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		all = append(all, chunk...)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
	f.Close()
	waitBlobs(t, s.container(), map[string]string{date + "/oldclock/slow.bin": sha(all)}, 20*time.Second)
	s.waitNFSEmpty("oldclock")
	if st := s.status(); num(st, "files_processed") != 1 {
		t.Fatalf("files_processed %d, want 1 upload of the whole file", num(st, "files_processed"))
	}
}

// A finished file stamped 10 minutes in the future (a producer clock
// ahead) is uploaded within a few polls after the minimum age, not after
// our clock catches up with its mtime.
func TestFutureMtimeUploadsPromptly(t *testing.T) {
	s := newSvc(t)
	s.env["APP_MIN_FILE_AGE_S"] = "0.5"
	s.start()
	in, date := s.startSession("aheadclock")
	data := []byte("finished, with a clock 10 minutes ahead")
	p := filepath.Join(in, "ahead.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(10 * time.Minute)
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	waitBlobs(t, s.container(), map[string]string{date + "/aheadclock/ahead.bin": sha(data)}, 10*time.Second)
}

// stagingBytes sums the sizes of the files under dir.
func stagingBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// sampler records the largest value fn returns until stopped.
type sampler struct {
	max  atomic.Int64
	stop chan struct{}
	wg   sync.WaitGroup
}

func sample(fn func() int64) *sampler {
	s := &sampler{stop: make(chan struct{})}
	s.wg.Go(func() {
		for {
			if v := fn(); v > s.max.Load() {
				s.max.Store(v)
			}
			select {
			case <-s.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	return s
}

func (s *sampler) done() int64 {
	close(s.stop)
	s.wg.Wait()
	return s.max.Load()
}

func randomBytes(t *testing.T, n int, seed byte) []byte {
	t.Helper()
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// A staging budget smaller than one file: small files keep flowing, the
// large one is uploaded straight from .processing (status says why), and
// several files that together exceed the budget all upload while staging
// never holds more than the budget.
func TestStagingBudget(t *testing.T) {
	const budget = 5 << 20
	s := newSvc(t)
	s.env["APP_LOCAL_STAGING_MAX_BYTES"] = fmt.Sprint(budget)
	s.env["APP_WORKER_CONCURRENCY"] = "4"
	s.start()
	in, date := s.startSession("budget")
	onDisk := sample(func() int64 { return stagingBytes(s.staging()) })
	inStatus := sample(func() int64 {
		_, m := s.get("/v1/status")
		return num(m, "staging_bytes")
	})
	want := map[string]string{}
	write := func(name string, size int, seed byte) {
		want[date+"/budget/"+name] = writeFile(t, in, name, randomBytes(t, size, seed))
	}
	write("huge.bin", 7<<20, 1) // can never fit
	for i := range 5 {
		write(fmt.Sprintf("big-%d.bin", i), 2<<20+i, byte(10+i)) // two fit at once
	}
	for i := range 20 {
		write(fmt.Sprintf("small-%02d.bin", i), 4096+i, byte(30+i))
	}
	waitBlobs(t, s.container(), want, 60*time.Second)
	s.waitNFSEmpty("budget")
	maxDisk, maxStatus := onDisk.done(), inStatus.done()
	t.Logf("staging peak: %d bytes on disk, %d in status (budget %d)", maxDisk, maxStatus, budget)
	if maxDisk > budget || maxStatus > budget {
		t.Fatalf("staging passed its budget of %d bytes: %d on disk, %d in status", budget, maxDisk, maxStatus)
	}
	if maxDisk == 0 {
		t.Fatal("no staging file was ever seen: the test did not exercise the budget")
	}
	st := s.status()
	if num(st, "files_direct") != 1 || num(st, "staging_budget_bytes") != budget || num(st, "staging_bytes") != 0 {
		t.Fatalf("status: files_direct %v, staging_budget_bytes %v, staging_bytes %v",
			st["files_direct"], st["staging_budget_bytes"], st["staging_bytes"])
	}
	direct := st["direct"].([]any)
	if len(direct) != 1 {
		t.Fatalf("direct: %v", direct)
	}
	d := direct[0].(map[string]any)
	if d["file"] != date+"/budget/huge.bin" || !strings.Contains(d["reason"].(string), "larger than the staging budget") {
		t.Fatalf("direct entry: %v", d)
	}
}

// A staging disk smaller than a file (a real 2 MiB tmpfs): the copy hits
// ENOSPC, that file goes straight from .processing, nothing is retried
// forever, and small files keep flowing.
func TestStagingDiskFull(t *testing.T) {
	s := newSvc(t)
	mnt := s.staging()
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "nwu-staging", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs for staging: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	s.start()
	in, date := s.startSession("fulldisk")
	want := map[string]string{date + "/fulldisk/large.bin": writeFile(t, in, "large.bin", randomBytes(t, 3<<20, 7))}
	for i := range 10 {
		name := fmt.Sprintf("small-%d.bin", i)
		want[date+"/fulldisk/"+name] = writeFile(t, in, name, randomBytes(t, 1000+i, byte(i)))
	}
	waitBlobs(t, s.container(), want, 30*time.Second)
	s.waitNFSEmpty("fulldisk")
	st := s.status()
	direct := st["direct"].([]any)
	if num(st, "files_direct") != 1 || len(direct) != 1 ||
		!strings.Contains(direct[0].(map[string]any)["reason"].(string), "staging disk is full") {
		t.Fatalf("status: files_direct %v, direct %v", st["files_direct"], st["direct"])
	}
	if num(st, "files_failed") != 0 {
		t.Fatalf("files_failed %d: a full staging disk must not fail attempts", num(st, "files_failed"))
	}
}
