package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// With a token, start and stop answer 401 (JSON error, WWW-Authenticate:
// Bearer) without it or with a wrong one, and work with it; probes,
// status, the page and the document stay open.
func TestTokenGuardsStartAndStop(t *testing.T) {
	for _, viaFile := range []bool{false, true} {
		name := "env"
		if viaFile {
			name = "file"
		}
		t.Run(name, func(t *testing.T) {
			const token = "op-token-7f3a"
			s := newSvc(t)
			if viaFile {
				p := filepath.Join(s.root, "token")
				if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				s.env["APP_API_TOKEN_FILE"] = p
			} else {
				s.env["APP_API_TOKEN"] = token
			}
			s.start()
			for _, ep := range []struct{ path, body string }{
				{"/v1/watch/start", `{"session":"tok"}`},
				{"/v1/watch/stop", ""},
			} {
				for _, auth := range []string{"", "Bearer wrong", "Basic " + token, "Bearer " + token + "x", token} {
					code, hdr, body := s.raw("POST", ep.path, ep.body, auth)
					var m map[string]any
					if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != "Bearer" || json.Unmarshal(body, &m) != nil || m["error"] == nil {
						t.Errorf("POST %s with %q: %d %q %s, want 401 with WWW-Authenticate: Bearer and a JSON error", ep.path, auth, code, hdr.Get("WWW-Authenticate"), body)
					}
				}
			}
			if st := s.status(); st["active"] != false {
				t.Fatalf("a refused start started a session: %v", st)
			}
			if code, _, body := s.raw("POST", "/v1/watch/start", `{"session":"tok"}`, "Bearer "+token); code != http.StatusCreated {
				t.Fatalf("start with the token: %d %s", code, body)
			}
			if code, _, body := s.raw("POST", "/v1/watch/stop", "", "bearer "+token); code != http.StatusOK || !strings.Contains(string(body), `"stopped":true`) {
				t.Fatalf("stop with the token: %d %s", code, body)
			}
			for _, p := range []string{"/healthz", "/readyz", "/v1/status", "/", "/openapi.json", "/docs"} {
				if code, _, _ := s.raw("GET", p, "", ""); code != http.StatusOK {
					t.Errorf("GET %s without a token: %d, want 200", p, code)
				}
			}
		})
	}
}

// Without a token configured, start and stop need none.
func TestTokenUnsetLeavesAPIOpen(t *testing.T) {
	s := newSvc(t).start()
	if code, _, body := s.raw("POST", "/v1/watch/start", `{"session":"open"}`, ""); code != http.StatusCreated {
		t.Fatalf("start: %d %s", code, body)
	}
	if code, _, body := s.raw("POST", "/v1/watch/stop", "", "Bearer anything"); code != http.StatusOK {
		t.Fatalf("stop: %d %s", code, body)
	}
}

// Both variables set, or an unreadable token file, stop start-up with a
// message naming the variable.
func TestTokenConfigErrors(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"both":       {"APP_API_TOKEN": "a", "APP_API_TOKEN_FILE": "/etc/hostname"},
		"unreadable": {"APP_API_TOKEN_FILE": "/nonexistent/token"},
	} {
		t.Run(name, func(t *testing.T) {
			s := newSvc(t)
			for k, v := range env {
				s.env[k] = v
			}
			s.launch()
			if code := s.waitExit(20 * time.Second); code == 0 {
				t.Fatal("service started")
			}
			if !strings.Contains(s.logs.String(), "APP_API_TOKEN_FILE") {
				t.Fatalf("message does not name APP_API_TOKEN_FILE:\n%s", s.logs.String())
			}
		})
	}
}
