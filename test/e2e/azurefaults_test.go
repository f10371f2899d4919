package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
)

// faultFiles writes a mix of sizes: single Put Blob and (above 64 KiB) blocks.
func faultFiles(t *testing.T, in, date, session string, n int) map[string]string {
	t.Helper()
	want := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("f%02d.bin", i)
		size := 100 + i*30_000 // 100 B .. ~300 KiB
		data := []byte(strings.Repeat(fmt.Sprintf("%s/%d;", session, i), size/8+1))[:size]
		want[date+"/"+session+"/"+name] = writeFile(t, in, name, data)
	}
	return want
}

// guardNFS checks, until stopped, that no file leaves NFS before its blob
// holds its exact bytes. It lists NFS first, then the blobs, so it never
// reports a file that was uploaded and completed in between.
// roots are where to look: the session's incoming folder and the processing root.
func guardNFS(t *testing.T, s *svc, roots []string, want map[string]string) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	var violations atomic.Int64
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(30 * time.Millisecond):
			}
			onNFS := map[string]bool{}
			for _, root := range roots {
				for _, f := range filesUnder(t, root) {
					onNFS[filepath.Base(f)] = true
				}
			}
			got := blobs(t, s.container())
			for key, sum := range want {
				if !onNFS[filepath.Base(key)] && got[key] != sum {
					violations.Add(1)
					t.Errorf("%s left NFS but its blob is %q, want %s", key, got[key], sum)
				}
			}
		}
	})
	end := func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
	t.Cleanup(end)
	return func() {
		end()
		if violations.Load() > 0 {
			t.Fatalf("%d checks found a file deleted before upload", violations.Load())
		}
	}
}

func proxied(t *testing.T) (*svc, *faultproxy.Proxy) {
	s, p := newProxiedSvc(t)
	s.env["APP_AZURE_MAX_SINGLE_PUT_SIZE"] = "65536"
	s.env["APP_AZURE_MAX_BLOCK_SIZE"] = "32768"
	s.env["APP_AZURE_MAX_CONCURRENCY"] = "4"
	s.env["APP_AZURE_TRY_TIMEOUT_S"] = "5"
	return s, p
}

// SPEC §8 / issue: Azure failures while the service runs. Each case ends
// with every file in the container with its exact bytes, nothing deleted
// from NFS before that, and the counters right.
func TestAzureFaults(t *testing.T) {
	const n = 10
	var seq atomic.Int64
	cycle := func(actions ...faultproxy.Action) faultproxy.Rule {
		return func(r *http.Request) faultproxy.Action {
			if r.Method != http.MethodPut {
				return faultproxy.Pass
			}
			return actions[seq.Add(1)%int64(len(actions))]
		}
	}
	cases := []struct {
		name string
		rule faultproxy.Rule
		// during runs while the fault is on; it returns when the fault can end.
		during func(t *testing.T, s *svc)
	}{
		{name: "5xx and throttling", rule: cycle(faultproxy.Fail500, faultproxy.Pass, faultproxy.Fail503, faultproxy.Pass, faultproxy.Fail429, faultproxy.Pass, faultproxy.Pass, faultproxy.Pass)},
		{name: "connection reset mid-body", rule: cycle(faultproxy.Reset, faultproxy.Pass, faultproxy.Pass)},
		{name: "latency", rule: cycle(faultproxy.Slow)},
		{name: "corrupted request bodies", rule: cycle(faultproxy.Corrupt, faultproxy.Pass, faultproxy.Pass)},
		{
			name: "azure down, then back",
			rule: faultproxy.Always(faultproxy.Down),
			during: func(t *testing.T, s *svc) {
				eventually(t, 30*time.Second, "files waiting for a retry", func() bool {
					st := s.status()
					f, _ := st["failing"].([]any)
					return num(st, "retrying") > 0 && len(f) > 0 && st["last_error"] != nil
				})
				if got := len(filesUnder(t, filepath.Join(s.processing()))); got == 0 {
					t.Fatal("files left .processing while Azure was down")
				}
			},
		},
		{
			name: "403 is permanent until fixed",
			rule: func(r *http.Request) faultproxy.Action {
				if r.Method == http.MethodPut {
					return faultproxy.Fail403
				}
				return faultproxy.Pass
			},
			during: func(t *testing.T, s *svc) {
				eventually(t, 20*time.Second, "a permanent failure in status", func() bool {
					f, _ := s.status()["failing"].([]any)
					for _, e := range f {
						if m := e.(map[string]any); m["permanent"] == true && m["step"] == "upload" {
							return true
						}
					}
					return false
				})
				loud := false
				for _, l := range s.logs.lines() {
					if l["level"] == "ERROR" && l["step"] == "upload" && l["file"] != nil && l["session"] != nil && l["permanent"] == true {
						loud = true
					}
				}
				if !loud {
					t.Fatal("no ERROR log naming session, file and step for the permanent failure")
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, p := proxied(t)
			p.Latency = 300 * time.Millisecond
			s.start()
			session := "az-" + strings.ReplaceAll(strings.Fields(c.name)[0], "/", "")
			in, date := s.startSession(session)
			p.SetRule(c.rule)
			want := faultFiles(t, in, date, session, n)
			stop := guardNFS(t, s, []string{filepath.Join(s.incoming(), session), s.processing()}, want)
			if c.during != nil {
				c.during(t, s)
				p.SetRule(nil)
			}
			waitBlobs(t, s.container(), want, 60*time.Second)
			s.waitNFSEmpty(session)
			stop()
			st := s.status()
			if num(st, "files_processed") != n || num(st, "retrying") != 0 || num(st, "in_flight") != 0 || num(st, "queue_depth") != 0 {
				t.Fatalf("status after recovery: %v", st)
			}
			if f, _ := st["failing"].([]any); len(f) != 0 {
				t.Fatalf("failing list not cleared: %v", f)
			}
			if p.Faults.Load() == 0 {
				t.Fatal("no fault was injected")
			}
			if c.during != nil && num(st, "files_failed") == 0 {
				t.Fatalf("files_failed did not move: %v", st)
			}
			t.Logf("%s: %d requests, %d faults, %d failed attempts", c.name, p.Requests.Load(), p.Faults.Load(), num(st, "files_failed"))
		})
	}
}
