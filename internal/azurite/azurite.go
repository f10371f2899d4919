// Package azurite starts a real Azurite blob service on a free loopback
// port, in memory, for tests and the benchmark.
package azurite

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Azurite's well-known development account.
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Server is a running Azurite.
type Server struct {
	Port int
	opts Options
	cmd  *exec.Cmd
	done chan struct{}
}

// Options start Azurite over HTTPS (CertFile and KeyFile, PEM) and, with
// OAuth, accepting bearer tokens ("--oauth basic"). Path-style URLs are
// forced so a made-up host name in the URL is not read as the account.
type Options struct {
	CertFile, KeyFile string
	OAuth             bool
}

// Binary finds node_modules/.bin/azurite-blob in this folder or above
// (installed by `npm ci`), or takes $AZURITE_BLOB.
func Binary() (string, error) {
	if p := os.Getenv("AZURITE_BLOB"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("azurite-blob not found: run `npm ci` at the repository root (make test does)")
		}
		dir = parent
	}
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start launches Azurite and waits until it answers.
func Start() (*Server, error) { return StartWith(Options{}) }

// StartWith launches Azurite with o and waits until it answers.
func StartWith(o Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // the free port can be taken between FreePort and bind
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		s, err := start(bin, port, o)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(bin string, port int, o Options) (*Server, error) {
	args := []string{"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
		"--inMemoryPersistence", "--silent", "--disableTelemetry", "--skipApiVersionCheck"}
	probe := http.DefaultClient
	if o.CertFile != "" {
		args = append(args, "--cert", o.CertFile, "--key", o.KeyFile, "--disableProductStyleUrl")
		// Only to see that it listens; callers check its certificate.
		probe = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		if o.OAuth {
			args = append(args, "--oauth", "basic")
		}
	}
	cmd := exec.Command(bin, args...)
	// Own process group, killed with us: an orphaned Azurite would hold its port.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start azurite: %w", err)
	}
	s := &Server{Port: port, opts: o, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return nil, fmt.Errorf("azurite exited during start-up (port %d)", port)
		default:
		}
		resp, err := probe.Get(s.BlobEndpoint() + "?comp=list")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return nil, errors.New("azurite did not answer within 30s")
}

// BlobEndpoint is the account's blob URL.
// Pid is the Azurite process's, for tools that measure its CPU.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

func (s *Server) BlobEndpoint() string {
	return fmt.Sprintf("%s://127.0.0.1:%d/%s", s.scheme(), s.Port, AccountName)
}

func (s *Server) scheme() string {
	if s.opts.CertFile != "" {
		return "https"
	}
	return "http"
}

// ConnectionString for the account, pointing at endpoint (BlobEndpoint()
// when empty; a proxy's address to put faults in between).
func (s *Server) ConnectionString(endpoint string) string {
	if endpoint == "" {
		endpoint = s.BlobEndpoint()
	}
	return fmt.Sprintf("DefaultEndpointsProtocol=%s;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", s.scheme(), AccountName, AccountKey, endpoint)
}

// Client returns an SDK client straight to Azurite, for assertions.
func (s *Server) Client() (*azblob.Client, error) {
	return azblob.NewClientFromConnectionString(s.ConnectionString(""), nil)
}

// Stop kills Azurite's whole process group.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
}
