package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Tokens that live 3 s keep uploads going over several lifetimes. azcore
// renews a token once it is within 5 minutes of expiry (RefreshOn when the
// authority gives one): eagerly at most every 30 s while it is still valid,
// and always once it has expired. MSAL's cache counts a token within 5
// minutes of expiry as expired, so each renewal reaches the authority. With
// a 3 s lifetime the service must renew every few seconds: the test needs
// about 10 s instead of the hour a real token lives. Azurite refuses an
// expired token (checked below on the first one), so uploads after the
// first tokens expired were made with renewed ones.
func TestTokenRefreshKeepsUploading(t *testing.T) {
	const life = 3
	a := newAuthority(t, tlsPKIFor(t), life)
	s := tokenSvc(t, a).start()
	in, date := s.startSession("refresh")
	firstTok := a.issued()[0]
	began := time.Now()
	until := firstTok.exp.Add(2 * life * time.Second)
	n := 0
	for ; time.Now().Before(until); n++ {
		name := fmt.Sprintf("f%03d.txt", n)
		sum := writeFile(t, in, name, []byte(name))
		waitTLSBlob(t, s.container(), date+"/refresh/"+name, sum)
	}
	toks := a.issued()
	var renewed int
	for _, tk := range toks {
		if tk.exp.After(firstTok.exp.Add(time.Second)) {
			renewed++
		}
	}
	if renewed < 2 {
		t.Fatalf("%d tokens issued over %d uploads in three lifetimes, %d after the first expired; want several renewals", len(toks), n, renewed)
	}
	// The last blob can be there a moment before its file is counted.
	var st map[string]any
	eventually(t, 10*time.Second, "every file counted", func() bool {
		st = s.status()
		return num(st, "files_processed") == int64(n)
	})
	if num(st, "files_failed") != 0 {
		t.Fatalf("uploads did not keep working across renewals: %v", st)
	}
	if code := bearerGet(t, s.container(), firstTok.token); code != http.StatusForbidden {
		t.Fatalf("Azurite answered %d to an expired token; the test proves nothing if it accepts one", code)
	}
	t.Logf("%d uploads over %.1fs, %d tokens issued", n, time.Since(began).Seconds(), len(toks))
}

// bearerGet reads the container's properties with a given token.
func bearerGet(t *testing.T, container, token string) int {
	t.Helper()
	az, p := tlsAzurite(t)
	req, _ := http.NewRequest("GET", az.BlobEndpoint()+"/"+container+"?restype=container", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("x-ms-version", "2025-01-05")
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// auto: when the authority refuses the credential, or storage refuses the
// token it gave, the configured connection string is used; the log says
// which credential failed and why.
func TestTokenRefusedFallsBack(t *testing.T) {
	for _, c := range []struct{ mode, why string }{
		{grantRefuse, "AADSTS7000215"},
		{grantWrongAudience, "403"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			az, p := tlsAzurite(t)
			a := newAuthority(t, p, 3600)
			a.mode.Store(c.mode)
			s := tokenSvc(t, a)
			s.env["APP_AZURE_AUTH"] = "auto"
			s.env["APP_AZURE_CONNECTION_STRING"] = az.ConnectionString("")
			s.start()
			if a.asked.Load() == 0 {
				t.Fatal("the default credential never asked the authority")
			}
			if logWith(s, "azure credential failed; trying the next", map[string]string{"credential": "default-credential", "error": c.why}) == nil {
				t.Fatalf("no WARN naming default-credential and %q:\n%s", c.why, s.logs.String())
			}
			if logWith(s, "azure container ready", map[string]string{"credential": "connection-string"}) == nil {
				t.Fatalf("did not fall back to the connection string:\n%s", s.logs.String())
			}
			in, date := s.startSession("fb")
			sum := writeFile(t, in, "fb.txt", []byte("fallback"))
			waitTLSBlob(t, s.container(), date+"/fb/fb.txt", sum)
		})
	}
}

// A token endpoint that accepts and never answers: probes and status answer
// meanwhile, and start-up fails within APP_AZURE_AUTH_TIMEOUT_S naming the
// credential, with a non-zero exit.
func TestTokenEndpointHungFailsStartup(t *testing.T) {
	a := newAuthority(t, tlsPKIFor(t), 3600)
	a.mode.Store(grantHang)
	s := tokenSvc(t, a)
	s.env["APP_AZURE_AUTH_TIMEOUT_S"] = "2"
	began := time.Now()
	s.launch()
	eventually(t, 10*time.Second, "a token request in progress", func() bool { return a.asked.Load() > 0 })
	for _, path := range []string{"/healthz", "/v1/status", "/readyz"} {
		t0 := time.Now()
		code, _ := s.get(path)
		want := http.StatusOK
		if path == "/readyz" {
			want = http.StatusServiceUnavailable
		}
		if code != want || time.Since(t0) > time.Second {
			t.Errorf("%s answered %d after %v while the token request hangs", path, code, time.Since(t0))
		}
	}
	if code := s.waitExit(20 * time.Second); code == 0 {
		t.Fatal("exit code 0 although the token endpoint never answered")
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("start-up gave up after %v; the auth timeout is 2s", took)
	}
	errs := errorLines(s)
	if len(errs) != 1 {
		t.Fatalf("want one error line:\n%s", s.logs.String())
	}
	text := fmt.Sprint(errs[0]["msg"], " ", errs[0]["error"])
	for _, w := range []string{"default-credential", "APP_AZURE_AUTH_TIMEOUT_S"} {
		if !strings.Contains(text, w) {
			t.Errorf("error does not mention %q: %s", w, text)
		}
	}
}
