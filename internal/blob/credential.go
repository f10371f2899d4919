package blob

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Failure is a credential that was tried and did not work.
type Failure struct {
	Credential string
	Error      string
}

// publicAuthorities are the Entra ID hosts of Azure's public and sovereign
// clouds, which MSAL's instance discovery knows about.
var publicAuthorities = map[string]bool{}

func init() {
	for _, c := range []cloud.Configuration{cloud.AzurePublic, cloud.AzureChina, cloud.AzureGovernment} {
		if u, err := url.Parse(c.ActiveDirectoryAuthorityHost); err == nil {
			publicAuthorities[strings.ToLower(u.Hostname())] = true
		}
	}
}

// privateAuthority reports whether AZURE_AUTHORITY_HOST names an authority
// outside the clouds instance discovery knows: discovery asks the public
// cloud about it, which a private or disconnected authority cannot pass.
func privateAuthority(host string) bool {
	if host == "" {
		return false
	}
	u, err := url.Parse(host)
	if err != nil || u.Hostname() == "" {
		return false
	}
	return !publicAuthorities[strings.ToLower(u.Hostname())]
}

// newDefaultCredential builds DefaultAzureCredential from the standard
// AZURE_* variables, sending its requests through the store's transport
// (same proxy and trusted CAs as the blob endpoint).
func newDefaultCredential(rt http.RoundTripper) (azcore.TokenCredential, error) {
	return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Transport: &http.Client{Transport: rt}},
		DisableInstanceDiscovery: privateAuthority(os.Getenv("AZURE_AUTHORITY_HOST")),
	})
}

// hasSAS reports whether an account URL carries a SAS token.
func hasSAS(accountURL string) bool {
	u, err := url.Parse(accountURL)
	return err == nil && u.Query().Get("sig") != ""
}

// withoutQuery drops a SAS token from an account URL.
func withoutQuery(accountURL string) string {
	u, err := url.Parse(accountURL)
	if err != nil {
		return accountURL
	}
	u.RawQuery = ""
	return u.String()
}

// failFastTLS makes an untrusted certificate a non-retriable error: retrying
// cannot make it trusted, and start-up should say so at once.
type failFastTLS struct{ next http.RoundTripper }

func (t failFastTLS) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil && untrusted(err) {
		return nil, nonRetriable{err}
	}
	return resp, err
}

// nonRetriable satisfies azcore's NonRetriable interface (errors.As matches
// by method), so the retry policy gives up on the first try.
type nonRetriable struct{ error }

func (nonRetriable) NonRetriable()   {}
func (e nonRetriable) Unwrap() error { return e.error }

func untrusted(err error) bool {
	var ua x509.UnknownAuthorityError
	var cv *tls.CertificateVerificationError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &ua) || errors.As(err, &cv) || errors.As(err, &hn) || errors.As(err, &ci) {
		return true
	}
	// azidentity flattens some errors into text.
	s := err.Error()
	return strings.Contains(s, "x509: ") || strings.Contains(s, "tls: failed to verify certificate")
}

// explain adds what an operator needs to fix the common failures.
func explain(err error, actx context.Context, timeout time.Duration) string {
	msg := oneLine(err)
	switch {
	case errors.Is(actx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s (APP_AZURE_AUTH_TIMEOUT_S): %s", timeout, msg)
	case untrusted(err):
		return "TLS certificate not trusted: " + msg +
			"; set SSL_CERT_FILE or APP_AZURE_CA_FILE to a PEM file holding the CA that signed the server's certificate"
	}
	return msg
}
