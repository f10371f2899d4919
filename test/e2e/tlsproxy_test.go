package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/azurite"
)

// tlsKeySvc prepares a service that reaches the HTTPS Azurite at endpoint
// with the account key (a connection string).
func tlsKeySvc(t *testing.T, endpoint string) *svc {
	t.Helper()
	az, _ := tlsAzurite(t)
	s := newSvc(t)
	s.env["APP_AZURE_CONNECTION_STRING"] = az.ConnectionString(endpoint)
	return s
}

// A private CA: without it start-up fails at once (an untrusted certificate
// is not retried) saying how to fix it; APP_AZURE_CA_FILE adds it to the
// system's CAs and uploads work.
func TestCAPrivateEndpoint(t *testing.T) {
	_, p := tlsAzurite(t)
	t.Run("not trusted", func(t *testing.T) {
		s := tlsKeySvc(t, "")
		began := time.Now()
		s.launch()
		if code := s.waitExit(20 * time.Second); code == 0 {
			t.Fatal("started against an untrusted certificate")
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("took %v to give up on an untrusted certificate", took)
		}
		errs := errorLines(s)
		if len(errs) != 1 {
			t.Fatalf("want one error line:\n%s", s.logs.String())
		}
		text := fmt.Sprint(errs[0]["error"])
		for _, w := range []string{"connection-string", "not trusted", "SSL_CERT_FILE", "APP_AZURE_CA_FILE"} {
			if !strings.Contains(text, w) {
				t.Errorf("error does not mention %q: %s", w, text)
			}
		}
	})
	t.Run("APP_AZURE_CA_FILE", func(t *testing.T) {
		s := tlsKeySvc(t, "")
		s.env["APP_AZURE_CA_FILE"] = p.caFile
		s.start()
		in, date := s.startSession("ca")
		sum := writeFile(t, in, "ca.txt", []byte("private CA"))
		waitTLSBlob(t, s.container(), date+"/ca/ca.txt", sum)
	})
}

// HTTPS_PROXY carries every request to the blob endpoint (a name, since Go
// never proxies loopback addresses); NO_PROXY sends a listed host direct.
func TestProxyCarriesBlobRequests(t *testing.T) {
	az, p := tlsAzurite(t)
	t.Run("HTTPS_PROXY", func(t *testing.T) {
		cp := startConnectProxy(t, p, az.Port)
		s := tlsKeySvc(t, fmt.Sprintf("https://%s:%d/%s", proxiedName, az.Port, azurite.AccountName))
		s.env["SSL_CERT_FILE"] = p.caFile
		s.env["HTTPS_PROXY"] = cp.url
		s.start()
		in, date := s.startSession("px")
		sum := writeFile(t, in, "px.txt", []byte("through the proxy"))
		waitTLSBlob(t, s.container(), date+"/px/px.txt", sum)
		// The name resolves nowhere: every request the service made went
		// through the proxy, which saw at least the container check and the put.
		if n := cp.requests.Load(); n < 2 {
			t.Fatalf("proxy carried %d requests", n)
		}
		if h := cp.badHost.Load(); h != nil {
			t.Fatalf("proxy asked for %v", h)
		}
	})
	t.Run("NO_PROXY", func(t *testing.T) {
		addr, conns := forwarder(t, p.hostIP, az.Port)
		endpoint := fmt.Sprintf("https://%s/%s", addr, azurite.AccountName)
		cp := startConnectProxy(t, p, az.Port)
		// Without NO_PROXY this address is proxied (and refused by the proxy).
		s := tlsKeySvc(t, endpoint)
		s.env["SSL_CERT_FILE"] = p.caFile
		s.env["HTTPS_PROXY"] = cp.url
		s.env["APP_AZURE_AUTH_TIMEOUT_S"] = "2"
		s.launch()
		if code := s.waitExit(20 * time.Second); code == 0 || cp.badHost.Load() != addr {
			t.Fatalf("without NO_PROXY: exit %d, proxy asked for %v", code, cp.badHost.Load())
		}
		s = tlsKeySvc(t, endpoint)
		s.env["SSL_CERT_FILE"] = p.caFile
		s.env["HTTPS_PROXY"] = cp.url
		s.env["NO_PROXY"] = p.hostIP.String()
		connects := cp.connects.Load()
		s.start()
		in, date := s.startSession("np")
		sum := writeFile(t, in, "np.txt", []byte("direct"))
		waitTLSBlob(t, s.container(), date+"/np/np.txt", sum)
		if cp.connects.Load() != connects || conns.Load() == 0 {
			t.Fatalf("with NO_PROXY: %d tunnels through the proxy, %d direct connections", cp.connects.Load()-connects, conns.Load())
		}
	})
}
