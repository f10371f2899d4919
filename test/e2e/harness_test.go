// Package e2e runs the real service binary against a real Azurite and
// drives it only over HTTP and the filesystem.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/edge/nfs-watcher-uploader/internal/azurite"
	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
)

var (
	az      *azurite.Server
	binPath string
	azc     *azblob.Client
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nwu-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "nfs-watcher-uploader")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../../cmd/nfs-watcher-uploader")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if raceEnabled {
		build.Env = append(os.Environ(), "CGO_ENABLED=1") // -race needs cgo
	}
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build service:", err)
		return 1
	}
	az, err = azurite.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer az.Stop()
	azc, err = az.Client()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

var containerSeq atomic.Int64

// newContainer gives each test its own container, so tests never see each
// other's blobs.
func newContainer(t *testing.T) string {
	return fmt.Sprintf("t%d-%d", os.Getpid(), containerSeq.Add(1))
}

// svc is one run of the service binary.
type svc struct {
	t       *testing.T
	env     map[string]string
	root    string // test root: nfs/, staging/
	addr    string
	cmd     *exec.Cmd
	logs    *logBuf
	exited  chan struct{}
	exitErr error
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines decodes the JSON log lines.
func (l *logBuf) lines() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// baseEnv is a fast configuration against Azurite in root.
func baseEnv(t *testing.T, root string) map[string]string {
	return map[string]string{
		"APP_AZURE_AUTH":              "connection-string",
		"APP_AZURE_CONNECTION_STRING": az.ConnectionString(""),
		"APP_AZURE_CONTAINER":         newContainer(t),
		"APP_NFS_INCOMING_DIR":        filepath.Join(root, "nfs", "incoming"),
		"APP_NFS_PROCESSING_ROOT":     filepath.Join(root, "nfs", ".processing"),
		"APP_LOCAL_STAGING_ROOT":      filepath.Join(root, "staging"),
		"APP_POLL_INTERVAL_S":         "0.1",
		"APP_MIN_FILE_AGE_S":          "0.3",
		"APP_GC_INTERVAL_S":           "0.2",
		"APP_RETRY_BASE_S":            "0.05",
		"APP_RETRY_MAX_S":             "0.5",
		"APP_AZURE_TRY_TIMEOUT_S":     "10",
	}
}

// newSvc prepares a service in a fresh temp root; modify env then call start.
func newSvc(t *testing.T) *svc {
	root := t.TempDir()
	return &svc{t: t, root: root, env: baseEnv(t, root)}
}

// start runs the binary and waits until /readyz answers 200.
func (s *svc) start() *svc {
	s.t.Helper()
	s.launch()
	s.waitReady()
	return s
}

func (s *svc) launch() {
	s.t.Helper()
	port, err := azurite.FreePort()
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(binPath)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "APP_HTTP_ADDR=" + s.addr}
	if raceEnabled {
		cmd.Env = append(cmd.Env, goraceEnv)
	}
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logs := &logBuf{}
	s.logs = logs
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	exited := make(chan struct{})
	s.exited = exited
	var runErr error // this run's exit; s.exitErr is replaced by a restart
	go func() {
		runErr = cmd.Wait()
		s.exitErr = runErr
		close(exited)
	}()
	s.t.Cleanup(func() {
		s.kill()
		<-exited
		// Each run is checked on its own: a restart replaces s.logs.
		if r := raceReport(logs.String(), runErr); r != "" {
			s.t.Errorf("%s", r)
		}
		if s.t.Failed() {
			s.t.Logf("service logs:\n%s", s.logs.String())
		}
	})
}

// A race-built child stops at its first race with an exit code no other
// path uses.
const (
	raceExitCode = 66
	goraceEnv    = "GORACE=halt_on_error=1 exitcode=66"
)

// raceReport says why a race-built run failed the race check, or "".
func raceReport(logs string, exitErr error) string {
	if !raceEnabled {
		return ""
	}
	if i := strings.Index(logs, "WARNING: DATA RACE"); i >= 0 {
		return "the service reported a data race:\n" + logs[i:]
	}
	if ee, ok := exitErr.(*exec.ExitError); ok && ee.ExitCode() == raceExitCode {
		return fmt.Sprintf("the service exited %d (the race detector's code):\n%s", raceExitCode, logs)
	}
	return ""
}

func (s *svc) waitReady() {
	s.t.Helper()
	eventually(s.t, 30*time.Second, "service ready", func() bool {
		select {
		case <-s.exited:
			s.t.Fatalf("service exited during start-up: %v\n%s", s.exitErr, s.logs.String())
		default:
		}
		code, _ := s.get("/readyz")
		return code == http.StatusOK
	})
}

// kill sends SIGKILL and waits for the process to go.
func (s *svc) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// restart kills the process and starts it again on the same folders.
func (s *svc) restart() {
	s.t.Helper()
	s.kill()
	s.start()
}

// waitExit waits for the process to end by itself and returns its exit code.
func (s *svc) waitExit(d time.Duration) int {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(d):
		s.t.Fatalf("service still running after %v", d)
	}
	if ee, ok := s.exitErr.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

var httpc = &http.Client{Timeout: 10 * time.Second}

func (s *svc) do(method, path, body string) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+s.addr+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	checkResponse(s.t, req, resp, b)
	if err := json.Unmarshal(b, &m); err != nil {
		s.t.Errorf("%s %s: body is not a JSON object: %q", method, path, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		s.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, m
}

func (s *svc) get(path string) (int, map[string]any)        { return s.do("GET", path, "") }
func (s *svc) post(path, body string) (int, map[string]any) { return s.do("POST", path, body) }

func (s *svc) status() map[string]any {
	s.t.Helper()
	code, m := s.get("/v1/status")
	if code != http.StatusOK {
		s.t.Fatalf("status: %d %v", code, m)
	}
	return m
}

func num(m map[string]any, k string) int64 {
	f, _ := m[k].(float64)
	return int64(f)
}

// startSession starts a named session and returns its incoming folder and date prefix.
func (s *svc) startSession(name string) (string, string) {
	s.t.Helper()
	code, m := s.post("/v1/watch/start", fmt.Sprintf(`{"session":%q}`, name))
	if code != http.StatusCreated {
		s.t.Fatalf("start session: %d %v", code, m)
	}
	return m["incoming_dir"].(string), m["date_prefix"].(string)
}

func (s *svc) incoming() string   { return s.env["APP_NFS_INCOMING_DIR"] }
func (s *svc) processing() string { return s.env["APP_NFS_PROCESSING_ROOT"] }
func (s *svc) staging() string    { return s.env["APP_LOCAL_STAGING_ROOT"] }
func (s *svc) container() string  { return s.env["APP_AZURE_CONTAINER"] }

// promURL is the Prometheus endpoint the service logged at start-up; the
// line may reach the harness's reader just after /readyz.
func (s *svc) promURL() string {
	s.t.Helper()
	var url string
	eventually(s.t, 5*time.Second, "the prometheus URL logged", func() bool {
		for _, l := range s.logs.lines() {
			if l["msg"] == "prometheus metrics" {
				url, _ = l["url"].(string)
			}
		}
		return url != ""
	})
	return url
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// writeFile writes a file with an mtime in the past, as a producer that
// finished a while ago would leave it.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	return sha(data)
}

// blobs lists the container: name -> SHA-256 of the content.
func blobs(t *testing.T, container string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ctx := context.Background()
	pager := azc.NewListBlobsFlatPager(container, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if bloberror.HasCode(err, bloberror.ContainerNotFound) {
				return out
			}
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			resp, err := azc.DownloadStream(ctx, container, *b.Name, nil)
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

// waitBlobs waits until the container holds exactly want (name -> sha).
func waitBlobs(t *testing.T, container string, want map[string]string, d time.Duration) {
	t.Helper()
	var got map[string]string
	deadline := time.Now().Add(d)
	for {
		got = blobs(t, container)
		if mapsEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("blobs after %v:\n got  %v\n want %v", d, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// filesUnder lists regular files below dir (relative paths), skipping
// .session.json.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if info.Mode().IsRegular() && info.Name() != ".session.json" {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// waitNFSEmpty waits until no file is left in incoming/<session>,
// .processing (GC done) and staging.
func (s *svc) waitNFSEmpty(session string) {
	s.t.Helper()
	eventually(s.t, 20*time.Second, "NFS and staging emptied", func() bool {
		return len(filesUnder(s.t, filepath.Join(s.incoming(), session))) == 0 &&
			len(filesUnder(s.t, s.processing())) == 0 && len(filesUnder(s.t, s.staging())) == 0
	})
}

// newProxiedSvc prepares a service whose Azure traffic goes through a fresh
// fault proxy in front of Azurite.
func newProxiedSvc(t *testing.T) (*svc, *faultproxy.Proxy) {
	t.Helper()
	s := newSvc(t)
	return s, proxyAzure(t, s)
}

// proxyAzure routes a prepared service's Azure traffic through a fresh
// fault proxy in front of Azurite.
func proxyAzure(t *testing.T, s *svc) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Start(az.BlobEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	s.env["APP_AZURE_CONNECTION_STRING"] = az.ConnectionString(p.URL() + "/devstoreaccount1")
	return p
}

// holdPuts holds every upload request until p.Release.
func holdPuts(p *faultproxy.Proxy) {
	p.Hold(func(r *http.Request) faultproxy.Action {
		if r.Method == http.MethodPut {
			return faultproxy.Hang
		}
		return faultproxy.Pass
	})
}
