package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/edge/nfs-watcher-uploader/internal/azurite"
)

// proxiedName is a made-up host name for the blob endpoint: Go never
// proxies loopback addresses, so only a name shows what HTTPS_PROXY does.
const proxiedName = "blob.nwu.test"

// pki is a test CA and one server certificate it signed, valid for the
// loopback addresses, proxiedName and this machine's own address.
type pki struct {
	dir      string
	caFile   string // PEM of the CA: what SSL_CERT_FILE names
	certFile string
	keyFile  string
	pool     *x509.CertPool
	leaf     tls.Certificate
	hostIP   net.IP // an address Go proxies that still reaches this machine
}

func newPKI(dir string) (*pki, error) {
	p := &pki{dir: dir, hostIP: hostIP()}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nwu test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if p.hostIP != nil {
		ips = append(ips, p.hostIP)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "azurite"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost", proxiedName}, IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	p.caFile, p.certFile, p.keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string][]byte{p.caFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), p.certFile: certPEM, p.keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return nil, err
		}
	}
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)
	p.leaf, err = tls.X509KeyPair(certPEM, keyPEM)
	return p, err
}

// hostIP is 0.0.0.0: Go's proxy rules do not count it as loopback, so it
// is proxied unless NO_PROXY names it, yet Linux connects it to the
// loopback interface, so no packet ever leaves the machine.
func hostIP() net.IP { return net.IPv4zero }

var (
	tlsOnce sync.Once
	tlsAz   *azurite.Server
	tlsPKI  *pki
	tlsErr  error
)

// tlsAzurite is an Azurite over HTTPS that accepts bearer tokens, shared by
// the token tests (it takes ~3 s to start). It dies with the test process.
func tlsAzurite(t *testing.T) (*azurite.Server, *pki) {
	t.Helper()
	tlsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nwu-e2e-pki-")
		if err != nil {
			tlsErr = err
			return
		}
		if tlsPKI, tlsErr = newPKI(dir); tlsErr != nil {
			return
		}
		tlsAz, tlsErr = azurite.StartWith(azurite.Options{CertFile: tlsPKI.certFile, KeyFile: tlsPKI.keyFile, OAuth: true})
	})
	if tlsErr != nil {
		t.Fatal(tlsErr)
	}
	return tlsAz, tlsPKI
}

// tlsClient reaches the HTTPS Azurite with the account key, for assertions.
func tlsClient(t *testing.T) *azblob.Client {
	t.Helper()
	a, p := tlsAzurite(t)
	c, err := azblob.NewClientFromConnectionString(a.ConnectionString(""), &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitTLSBlob waits until the HTTPS Azurite holds name with content sum.
func waitTLSBlob(t *testing.T, container, name, sum string) {
	t.Helper()
	c := tlsClient(t)
	eventually(t, 20*time.Second, "blob "+name, func() bool {
		resp, err := c.DownloadStream(context.Background(), container, name, nil)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		h := sha256.New()
		if _, err := io.Copy(h, resp.Body); err != nil {
			return false
		}
		return hex.EncodeToString(h.Sum(nil)) == sum
	})
}

// closedPort is a loopback address nothing listens on: as HTTPS_PROXY it
// makes any request for a public host fail here instead of leaving.
func closedPort(t *testing.T) string {
	t.Helper()
	port, err := azurite.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// Token modes of the fake authority.
const (
	grantOK            = "ok"
	grantRefuse        = "refuse"         // Entra ID's answer to a wrong secret
	grantHang          = "hang"           // accepts and never answers
	grantWrongAudience = "wrong-audience" // a token storage refuses (403)
)

// issued is one token the fake authority handed out.
type issued struct {
	token string
	exp   time.Time
	form  url.Values
}

// authority is a fake Entra ID token endpoint over TLS, enough for MSAL:
// the OpenID metadata and the v2.0 token endpoint. Azurite does not check
// token signatures, so tokens are unsigned JWTs with the claims it reads.
type authority struct {
	srv       *httptest.Server
	tenant    string
	mode      atomic.Value // string
	expiresIn int
	mu        sync.Mutex
	tokens    []issued
	asked     atomic.Int64 // token requests received, answered or not
	release   chan struct{}
}

func newAuthority(t *testing.T, p *pki, expiresIn int) *authority {
	t.Helper()
	a := &authority{tenant: "72f988bf-0000-4000-8000-000000000001", expiresIn: expiresIn, release: make(chan struct{})}
	a.mode.Store(grantOK)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		base := "https://" + r.Host + "/" + r.PathValue("tenant")
		writeJSON(w, 200, map[string]any{
			"issuer": base + "/v2.0", "authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"token_endpoint": base + "/oauth2/v2.0/token", "jwks_uri": base + "/discovery/v2.0/keys",
		})
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", a.token)
	a.srv = httptest.NewUnstartedServer(mux)
	a.srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.leaf}}
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	t.Cleanup(func() { close(a.release) }) // runs first: frees hung handlers
	return a
}

func (a *authority) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	a.asked.Add(1)
	switch a.mode.Load().(string) {
	case grantHang:
		<-a.release
		return
	case grantRefuse:
		writeJSON(w, 401, map[string]any{"error": "invalid_client",
			"error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": []int{7000215}})
		return
	}
	aud := "https://storage.azure.com"
	if a.mode.Load().(string) == grantWrongAudience {
		aud = "https://vault.azure.net"
	}
	now := time.Now()
	exp := now.Add(time.Duration(a.expiresIn) * time.Second)
	claims, _ := json.Marshal(map[string]any{
		"aud": aud, "iss": "https://sts.windows.net/" + a.tenant + "/", "tid": a.tenant,
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": exp.Add(time.Second - 1).Unix(), // rounded up: never before the expires_in the client counts
		"oid": "00000000-0000-4000-8000-00000000000b", "appid": r.Form.Get("client_id"), "jti": rand.Text(),
	})
	enc := base64.RawURLEncoding.EncodeToString
	tok := enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc(claims) + "." + enc([]byte(rand.Text()))
	a.mu.Lock()
	a.tokens = append(a.tokens, issued{token: tok, exp: exp, form: r.Form})
	a.mu.Unlock()
	writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": a.expiresIn, "ext_expires_in": a.expiresIn, "access_token": tok})
}

func (a *authority) issued() []issued {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]issued(nil), a.tokens...)
}

func (a *authority) url() string { return a.srv.URL + "/" }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// tokenSvc prepares a service that authenticates to the HTTPS Azurite with
// DefaultAzureCredential as a service principal, configured only by the
// standard AZURE_* variables and SSL_CERT_FILE. A stray request for a
// public host meets a closed proxy port.
func tokenSvc(t *testing.T, a *authority) *svc {
	t.Helper()
	az, p := tlsAzurite(t)
	s := newSvc(t)
	delete(s.env, "APP_AZURE_CONNECTION_STRING")
	proxy := closedPort(t)
	for k, v := range map[string]string{
		"APP_AZURE_AUTH":        "default",
		"APP_AZURE_ACCOUNT_URL": az.BlobEndpoint(),
		"AZURE_TENANT_ID":       a.tenant,
		"AZURE_CLIENT_ID":       "5e1f0000-0000-4000-8000-00000000c11e",
		"AZURE_CLIENT_SECRET":   "s3cret-for-tests",
		"AZURE_AUTHORITY_HOST":  a.url(),
		"SSL_CERT_FILE":         p.caFile,
		"HTTPS_PROXY":           proxy,
		"HTTP_PROXY":            proxy,
	} {
		s.env[k] = v
	}
	return s
}

// logWith finds a log line with the given message whose fields include want.
func logWith(s *svc, msg string, want map[string]string) map[string]any {
	for _, l := range s.logs.lines() {
		if l["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range want {
			if got, _ := l[k].(string); !strings.Contains(got, v) {
				ok = false
			}
		}
		if ok {
			return l
		}
	}
	return nil
}

// connectProxy is an HTTPS_PROXY on loopback that maps proxiedName to
// 127.0.0.1, terminates TLS with the test certificate and forwards each
// request to the HTTPS Azurite, counting them.
type connectProxy struct {
	url      string
	connects atomic.Int64
	requests atomic.Int64
	badHost  atomic.Value // a tunnel target other than proxiedName
}

func startConnectProxy(t *testing.T, p *pki, upstreamPort int) *connectProxy {
	t.Helper()
	cp := &connectProxy{}
	up := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}
	t.Cleanup(up.CloseIdleConnections)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		cp.connects.Add(1)
		if host, _, _ := net.SplitHostPort(r.Host); host != proxiedName {
			cp.badHost.Store(r.Host)
			http.Error(w, "unknown host", http.StatusBadGateway)
			return
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{p.leaf}})
		br := bufio.NewReader(tc)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			cp.requests.Add(1)
			req.RequestURI = ""
			req.URL.Scheme, req.URL.Host = "https", fmt.Sprintf("127.0.0.1:%d", upstreamPort)
			resp, err := up.RoundTrip(req)
			if err != nil {
				return
			}
			err = resp.Write(tc)
			resp.Body.Close()
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	cp.url = srv.URL
	return cp
}

// forwarder relays TCP from ip:<its port> (an address Go would proxy, see
// hostIP) to 127.0.0.1:port, counting connections. It listens on loopback
// only.
func forwarder(t *testing.T, ip net.IP, port int) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return net.JoinHostPort(ip.String(), fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)), &n
}
