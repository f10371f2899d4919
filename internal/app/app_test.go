package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/azurite"
	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
)

// lockedBuf collects the service's log lines from its goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// regularFiles lists the regular files below dir (relative paths), leaving
// out the persisted session state, which stays by design.
func regularFiles(dir string) []string {
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && info.Name() != ".session.json" {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

type apiClient struct {
	base string
	hc   *http.Client
}

// call does one request and decodes the JSON object answered; code 0 means
// the request did not get an answer (not listening yet, or gone).
func (c apiClient) call(method, path, body string) (int, map[string]any, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: body is not a JSON object: %q", method, path, b)
	}
	return resp.StatusCode, m, nil
}

func num(m map[string]any, k string) int64 {
	f, _ := m[k].(float64)
	return int64(f)
}

// TestRunUnderLoad runs the whole service in this process (watcher,
// pipeline, retries, GC, HTTP API) against Azurite behind a proxy that
// fails some uploads, so `go test -race` sees every goroutine of a real
// session: files claimed, staged in memory and on disk, uploaded whole and
// in blocks, retried, completed and collected while status is polled.
func TestRunUnderLoad(t *testing.T) {
	az, err := azurite.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(az.Stop)
	proxy, err := faultproxy.Start(az.BlobEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)

	// Files named retry-* fail every upload request while failRetry is
	// set: more than the SDK's own retries, so the pipeline has to retry
	// them. Every 7th other upload request fails once and the SDK retries it.
	var failRetry atomic.Bool
	failRetry.Store(true)
	var puts atomic.Int64
	proxy.SetRule(func(r *http.Request) faultproxy.Action {
		if r.Method != http.MethodPut {
			return faultproxy.Pass
		}
		if strings.Contains(r.URL.Path, "/retry-") {
			if failRetry.Load() {
				return faultproxy.Fail503
			}
			return faultproxy.Pass
		}
		if puts.Add(1)%7 == 0 {
			return faultproxy.Fail503
		}
		return faultproxy.Pass
	})

	root := t.TempDir()
	port, err := azurite.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := map[string]string{
		"APP_AZURE_AUTH":                "connection-string",
		"APP_AZURE_CONNECTION_STRING":   az.ConnectionString(proxy.URL() + "/" + azurite.AccountName),
		"APP_AZURE_CONTAINER":           "app-run",
		"APP_AZURE_MAX_SINGLE_PUT_SIZE": "262144",
		"APP_AZURE_MAX_BLOCK_SIZE":      "131072",
		"APP_AZURE_MAX_CONCURRENCY":     "4",
		"APP_AZURE_TRY_TIMEOUT_S":       "10",
		"APP_NFS_INCOMING_DIR":          filepath.Join(root, "nfs", "incoming"),
		"APP_NFS_PROCESSING_ROOT":       filepath.Join(root, "nfs", ".processing"),
		"APP_LOCAL_STAGING_ROOT":        filepath.Join(root, "staging"),
		"APP_HTTP_ADDR":                 addr,
		"APP_POLL_INTERVAL_S":           "0.05",
		"APP_MIN_FILE_AGE_S":            "0.2",
		"APP_RETRY_BASE_S":              "0.05",
		"APP_RETRY_MAX_S":               "0.3",
		"APP_GC_INTERVAL_S":             "0.1",
	}
	getenv := func(k string) string { return env[k] }

	logs := &lockedBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- Run(ctx, nil, getenv, logs, logs) }()
	// Registered after TempDir, so it runs first: the service must be gone
	// before its folders are removed.
	t.Cleanup(func() {
		cancel()
		select {
		case <-runErr:
		case <-time.After(30 * time.Second):
			t.Error("Run still running 30s after its context ended")
		}
		if t.Failed() {
			t.Logf("service logs:\n%s", logs.String())
		}
	})

	api := apiClient{base: "http://" + addr, hc: &http.Client{Timeout: 10 * time.Second}}
	eventually(t, 60*time.Second, "/readyz 200", func() bool {
		select {
		case err := <-runErr:
			t.Fatalf("Run returned during start-up: %v\n%s", err, logs.String())
		default:
		}
		code, _, _ := api.call("GET", "/readyz", "")
		return code == http.StatusOK
	})

	code, started, err := api.call("POST", "/v1/watch/start", `{"session":"load"}`)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("start session: %d %v %v", code, started, err)
	}
	in, _ := started["incoming_dir"].(string)
	prefix, _ := started["blob_prefix"].(string)
	if in == "" || prefix == "" {
		t.Fatalf("start session answered %v", started)
	}

	// Status is read concurrently with the work, as an operator's page
	// would; every answer must be a sane snapshot.
	pollDone := make(chan struct{})
	var pollWG sync.WaitGroup
	var polls, maxInFlight atomic.Int64
	pollWG.Go(func() {
		var lastProcessed int64
		for {
			select {
			case <-pollDone:
				return
			default:
			}
			code, st, err := api.call("GET", "/v1/status", "")
			if err != nil || code != http.StatusOK {
				t.Errorf("status while working: %d %v", code, err)
				return
			}
			polls.Add(1)
			for _, k := range []string{"queue_depth", "in_flight", "files_processed", "files_failed", "bytes_uploaded"} {
				if num(st, k) < 0 {
					t.Errorf("status %s is negative: %v", k, st)
				}
			}
			if p := num(st, "files_processed"); p < lastProcessed {
				t.Errorf("files_processed went back from %d to %d", lastProcessed, p)
			} else {
				lastProcessed = p
			}
			if f := num(st, "in_flight"); f > maxInFlight.Load() {
				maxInFlight.Store(f)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	stopPolling := func() { close(pollDone); pollWG.Wait() }
	defer func() {
		select {
		case <-pollDone:
		default:
			stopPolling()
		}
	}()

	// 30 files: most small (staged in memory, one Put Blob or a few
	// blocks), every fifth 1-3 MiB (a staging file, uploaded in blocks),
	// three of them failing until released.
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]string{}
	var retryNames []string
	for i := range 30 {
		name := fmt.Sprintf("f%02d.bin", i)
		if i%10 == 3 {
			name = fmt.Sprintf("retry-%02d.bin", i)
			retryNames = append(retryNames, name)
		}
		size := rng.IntN(400 << 10)
		if i%5 == 0 {
			size = 1<<20 + rng.IntN(2<<20)
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		sum := sha256.Sum256(data)
		want[prefix+name] = hex.EncodeToString(sum[:])
		// Written under a dot name and renamed in, as producers do: a dot
		// name is never taken.
		dst := filepath.Join(in, name)
		tmp := filepath.Join(in, "."+name+".part")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, dst); err != nil {
			t.Fatal(err)
		}
	}

	// Every file claimed and each retry-* file failed at least once.
	eventually(t, 90*time.Second, "all files claimed and the retry-* files failing", func() bool {
		if len(regularFiles(in)) > 0 {
			return false
		}
		_, st, err := api.call("GET", "/v1/status", "")
		if err != nil {
			return false
		}
		failing, _ := st["failing"].([]any)
		seen := 0
		for _, name := range retryNames {
			for _, f := range failing {
				if fm, _ := f.(map[string]any); strings.HasSuffix(fmt.Sprint(fm["file"]), name) {
					seen++
					break
				}
			}
		}
		return seen == len(retryNames) && num(st, "files_failed") > 0
	})

	// Stop while the retry-* files are still in flight: they must finish.
	code, stopped, err := api.call("POST", "/v1/watch/stop", "")
	if err != nil || code != http.StatusOK || stopped["stopped"] != true || stopped["session"] != "load" {
		t.Fatalf("stop: %d %v %v", code, stopped, err)
	}
	_, st, err := api.call("GET", "/v1/status", "")
	if err != nil {
		t.Fatal(err)
	}
	if st["active"] != false {
		t.Errorf("still active after stop: %v", st)
	}
	if num(st, "files_processed") >= int64(len(want)) {
		t.Fatalf("nothing was in flight at stop: %v", st)
	}
	failRetry.Store(false)

	eventually(t, 120*time.Second, "every file processed, NFS and staging empty", func() bool {
		_, st, err := api.call("GET", "/v1/status", "")
		return err == nil && num(st, "files_processed") >= int64(len(want)) &&
			len(regularFiles(in)) == 0 && len(regularFiles(env["APP_NFS_PROCESSING_ROOT"])) == 0 &&
			len(regularFiles(env["APP_LOCAL_STAGING_ROOT"])) == 0
	})
	stopPolling()

	_, st, err = api.call("GET", "/v1/status", "")
	if err != nil {
		t.Fatal(err)
	}
	if num(st, "files_failed") == 0 {
		t.Errorf("files_failed is 0: the pipeline never retried: %v", st)
	}
	if got := num(st, "files_processed"); got != int64(len(want)) {
		t.Errorf("files_processed %d, want %d", got, len(want))
	}
	t.Logf("%d status polls, in_flight up to %d, files_failed %d, %d proxy faults", polls.Load(), maxInFlight.Load(), num(st, "files_failed"), proxy.Faults.Load())

	got := blobSums(t, az)
	if len(got) != len(want) {
		t.Errorf("%d blobs, want %d", len(got), len(want))
	}
	for k, sum := range want {
		if got[k] != sum {
			t.Errorf("blob %s: sha256 %q, want %s", k, got[k], sum)
		}
	}

	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run returned %v after its context ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10s after its context ended")
	}
	runErr <- nil // for the clean-up's wait
	if code, _, err := api.call("GET", "/healthz", ""); err == nil {
		t.Errorf("the API still answers (%d) after Run returned", code)
	}
}

// blobSums lists the container straight from Azurite: name -> SHA-256.
func blobSums(t *testing.T, az *azurite.Server) map[string]string {
	t.Helper()
	c, err := az.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	out := map[string]string{}
	pager := c.NewListBlobsFlatPager("app-run", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			resp, err := c.DownloadStream(ctx, "app-run", *b.Name, nil)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			_, err = io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[*b.Name] = hex.EncodeToString(h.Sum(nil))
		}
	}
	return out
}
