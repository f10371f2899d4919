package blob

import (
	"errors"
	"net/http"
	"testing"
)

// Instance discovery stays on for the clouds it knows and is turned off for
// any other authority host (private, disconnected, or a test's).
func TestPrivateAuthority(t *testing.T) {
	for host, want := range map[string]bool{
		"":                                   false,
		"https://login.microsoftonline.com/": false,
		"https://LOGIN.microsoftonline.us":   false,
		"https://login.chinacloudapi.cn/":    false,
		"https://login.contoso.internal/":    true,
		"https://127.0.0.1:8443/":            true,
	} {
		if got := privateAuthority(host); got != want {
			t.Errorf("%q: private %v, want %v", host, got, want)
		}
	}
}

func TestHasSAS(t *testing.T) {
	if !hasSAS("https://a.blob.core.windows.net/?sv=2024-08-04&ss=b&sig=xyz") || hasSAS("https://a.blob.core.windows.net/") {
		t.Fatal("hasSAS")
	}
	if got := withoutQuery("https://a.blob.core.windows.net/?sv=1&sig=x"); got != "https://a.blob.core.windows.net/" {
		t.Fatal(got)
	}
}

// The store's transport keeps http.ProxyFromEnvironment: HTTPS_PROXY and
// NO_PROXY apply to Azure as they do to every Go program.
func TestTransportHonoursProxyEnvironment(t *testing.T) {
	s := open(t, "", Options{})
	if s.transport.Proxy == nil {
		t.Fatal("the store's transport has no Proxy function")
	}
	if !errors.Is(nonRetriable{http.ErrHandlerTimeout}, http.ErrHandlerTimeout) {
		t.Fatal("nonRetriable hides its cause")
	}
}
