package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// errorLines returns the ERROR log lines.
func errorLines(s *svc) []map[string]any {
	var out []map[string]any
	for _, l := range s.logs.lines() {
		if l["level"] == "ERROR" {
			out = append(out, l)
		}
	}
	return out
}

// Bad configuration: one message naming every offending variable, exit
// non-zero, nothing created on NFS.
func TestBadConfigNamesEveryVariable(t *testing.T) {
	s := newSvc(t)
	delete(s.env, "APP_AZURE_CONTAINER")
	s.env["APP_POLL_INTERVAL_S"] = "fast"
	s.env["APP_WORKER_CONCURRENCY"] = "0"
	s.env["APP_MAX_QUEUE_SIZE"] = "-3"
	s.env["APP_AZURE_AUTH"] = "magic"
	s.env["APP_GC_INTERVAL_S"] = "-1"
	s.env["APP_AZURE_MAX_BLOCK_SIZE"] = "1e3"
	s.launch()
	if code := s.waitExit(10 * time.Second); code == 0 {
		t.Fatal("exit code 0 on bad configuration")
	}
	errs := errorLines(s)
	if len(errs) != 1 {
		t.Fatalf("want exactly one error line, got %d:\n%s", len(errs), s.logs.String())
	}
	msg := errs[0]["msg"].(string)
	for _, v := range []string{"APP_AZURE_CONTAINER", "APP_POLL_INTERVAL_S", "APP_WORKER_CONCURRENCY",
		"APP_MAX_QUEUE_SIZE", "APP_AZURE_AUTH", "APP_GC_INTERVAL_S", "APP_AZURE_MAX_BLOCK_SIZE"} {
		if !strings.Contains(msg, v) {
			t.Errorf("message does not name %s: %s", v, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(s.root, "nfs")); !os.IsNotExist(err) {
		t.Fatalf("NFS touched despite bad configuration: %v", err)
	}
}

func TestDecimalSecondsAccepted(t *testing.T) {
	s := newSvc(t)
	s.env["APP_POLL_INTERVAL_S"] = "0.05"
	s.env["APP_MIN_FILE_AGE_S"] = "0"
	s.start()
}

// incoming and .processing on different filesystems: the claim's rename
// could never work, so start-up fails naming both variables.
func TestIncomingAndProcessingOnDifferentFilesystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "nwu-")
	if err != nil {
		t.Skip("no /dev/shm tmpfs here:", err)
	}
	defer os.RemoveAll(shm)
	s := newSvc(t)
	s.env["APP_NFS_PROCESSING_ROOT"] = filepath.Join(shm, ".processing")
	s.launch()
	if code := s.waitExit(10 * time.Second); code == 0 {
		t.Fatal("started with incoming and processing on different filesystems")
	}
	errs := errorLines(s)
	if len(errs) != 1 || !strings.Contains(errs[0]["msg"].(string), "APP_NFS_INCOMING_DIR") ||
		!strings.Contains(errs[0]["msg"].(string), "APP_NFS_PROCESSING_ROOT") ||
		!strings.Contains(errs[0]["msg"].(string), "different filesystems") {
		t.Fatalf("error lines: %v", errs)
	}
}

// PRD 6: no credential works: exit non-zero quickly, naming each
// credential tried and why it failed.
func TestAuthFailureExitsNamingEachCredential(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		tried []string
	}{
		{"shared-key with a wrong key", map[string]string{
			"APP_AZURE_AUTH": "shared-key", "APP_AZURE_ACCOUNT_URL": az.BlobEndpoint(),
			"APP_AZURE_ACCOUNT_NAME": "devstoreaccount1", "APP_AZURE_ACCOUNT_KEY": "d3Jvbmcta2V5LXdyb25nLWtleQ==",
		}, []string{"shared-key", "403"}},
		{"auto: default credential, then a connection string to a dead port", map[string]string{
			"APP_AZURE_AUTH": "auto", "APP_AZURE_ACCOUNT_URL": az.BlobEndpoint(),
			"APP_AZURE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" +
				"d3Jvbmcta2V5LXdyb25nLWtleQ==;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;",
			"APP_AZURE_AUTH_TIMEOUT_S": "5",
		}, []string{"default-credential", "connection-string"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSvc(t)
			delete(s.env, "APP_AZURE_CONNECTION_STRING")
			for k, v := range c.env {
				s.env[k] = v
			}
			s.launch()
			if code := s.waitExit(60 * time.Second); code == 0 {
				t.Fatal("exit code 0 although no credential works")
			}
			errs := errorLines(s)
			if len(errs) != 1 {
				t.Fatalf("want one error line:\n%s", s.logs.String())
			}
			text := errs[0]["msg"].(string) + " " + errs[0]["error"].(string)
			for _, w := range c.tried {
				if !strings.Contains(text, w) {
					t.Errorf("error does not mention %q: %s", w, text)
				}
			}
		})
	}
}

// The container is created when missing (every test relies on it; this
// one checks it explicitly with shared-key auth).
func TestSharedKeyCreatesContainer(t *testing.T) {
	s := newSvc(t)
	delete(s.env, "APP_AZURE_CONNECTION_STRING")
	s.env["APP_AZURE_AUTH"] = "shared-key"
	s.env["APP_AZURE_ACCOUNT_URL"] = az.BlobEndpoint()
	s.env["APP_AZURE_ACCOUNT_NAME"] = "devstoreaccount1"
	s.env["APP_AZURE_ACCOUNT_KEY"] = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	s.start()
	in, date := s.startSession("sk")
	sum := writeFile(t, in, "k.txt", []byte("key"))
	waitBlobsContain(t, s.container(), date+"/sk/k.txt", sum)
}

// SIGTERM ends the process promptly with exit code 0.
func TestSigtermExitsPromptly(t *testing.T) {
	s := newSvc(t).start()
	s.startSession("term")
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := s.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGINT", code)
	}
}
