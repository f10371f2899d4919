package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// DefaultAzureCredential configured only by the standard variables, against
// Azurite over HTTPS with OAuth and a private authority trusted through
// SSL_CERT_FILE: a service principal (APP_AZURE_AUTH=default) and workload
// identity's federated token file (auto), as Kubernetes writes them.
func TestTokenDefaultCredential(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, s *svc)
		check func(t *testing.T, form map[string][]string)
	}{
		{"service principal, default", func(t *testing.T, s *svc) {},
			func(t *testing.T, form map[string][]string) {
				if got := first(form, "client_secret"); got != "s3cret-for-tests" {
					t.Errorf("token request client_secret %q", got)
				}
			}},
		{"workload identity, auto", func(t *testing.T, s *svc) {
			f := filepath.Join(t.TempDir(), "azure-identity-token")
			if err := os.WriteFile(f, []byte("federated.kubernetes.token"), 0o600); err != nil {
				t.Fatal(err)
			}
			delete(s.env, "AZURE_CLIENT_SECRET")
			s.env["AZURE_FEDERATED_TOKEN_FILE"] = f
			s.env["APP_AZURE_AUTH"] = "auto"
		}, func(t *testing.T, form map[string][]string) {
			if got := first(form, "client_assertion"); got != "federated.kubernetes.token" {
				t.Errorf("token request client_assertion %q, want the federated token file's content", got)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newAuthority(t, tlsPKIFor(t), 3600)
			s := tokenSvc(t, a)
			c.setup(t, s)
			s.start()
			// The log line may reach the harness's reader just after /readyz.
			eventually(t, 5*time.Second, "authenticated by default-credential", func() bool {
				return logWith(s, "azure container ready", map[string]string{"credential": "default-credential"}) != nil
			})
			in, date := s.startSession("tok")
			sum := writeFile(t, in, "a.txt", []byte("by token"))
			waitTLSBlob(t, s.container(), date+"/tok/a.txt", sum)
			toks := a.issued()
			if len(toks) == 0 {
				t.Fatal("the authority issued no token")
			}
			c.check(t, toks[0].form)
		})
	}
}

func first(form map[string][]string, k string) string {
	if v := form[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func tlsPKIFor(t *testing.T) *pki {
	_, p := tlsAzurite(t)
	return p
}
