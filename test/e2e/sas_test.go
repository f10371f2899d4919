package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/edge/nfs-watcher-uploader/internal/azurite"
)

// accountSAS signs an account SAS for the plain Azurite.
func accountSAS(t *testing.T, perms sas.AccountPermissions, expiry time.Time) string {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(azurite.AccountName, azurite.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.AccountSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, StartTime: time.Now().Add(-time.Hour).UTC(), ExpiryTime: expiry.UTC(),
		Permissions:   perms.String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

var fullSAS = sas.AccountPermissions{Read: true, Write: true, Create: true, List: true, Add: true, Tag: true}

// A SAS in a connection string, or in the account URL with auto, works.
func TestSASWorks(t *testing.T) {
	token := accountSAS(t, fullSAS, time.Now().Add(time.Hour))
	for _, c := range []struct {
		name, credential string
		env              map[string]string
	}{
		{"connection string", "connection-string", map[string]string{"APP_AZURE_AUTH": "connection-string",
			"APP_AZURE_CONNECTION_STRING": "BlobEndpoint=" + az.BlobEndpoint() + ";SharedAccessSignature=" + token}},
		{"account URL, auto", "sas", map[string]string{"APP_AZURE_AUTH": "auto",
			"APP_AZURE_ACCOUNT_URL": az.BlobEndpoint() + "?" + token, "HTTPS_PROXY": closedPort(t), "HTTP_PROXY": closedPort(t)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSvc(t)
			delete(s.env, "APP_AZURE_CONNECTION_STRING")
			for k, v := range c.env {
				s.env[k] = v
			}
			s.start()
			if logWith(s, "azure container ready", map[string]string{"credential": c.credential}) == nil {
				t.Fatalf("not authenticated by %s:\n%s", c.credential, s.logs.String())
			}
			in, date := s.startSession("sas")
			sum := writeFile(t, in, "s.txt", []byte("by SAS"))
			waitBlobsContain(t, s.container(), date+"/sas/s.txt", sum)
		})
	}
}

// A SAS that expires while the service runs, or one without write
// permission, is a permanent failure in status and logs; the file stays in
// the processing root and is uploaded once the operator puts a working SAS
// in the Secret and restarts the pod.
func TestSASRefusedIsPermanentUntilFixed(t *testing.T) {
	for _, c := range []struct {
		name string
		sas  func() string
	}{
		{"expired", func() string { return accountSAS(t, fullSAS, time.Now().Add(3*time.Second)) }},
		{"read-only", func() string {
			return accountSAS(t, sas.AccountPermissions{Read: true, List: true}, time.Now().Add(time.Hour))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSvc(t)
			if _, err := azc.CreateContainer(context.Background(), s.container(), nil); err != nil {
				t.Fatal(err)
			}
			token := c.sas()
			s.env["APP_AZURE_CONNECTION_STRING"] = "BlobEndpoint=" + az.BlobEndpoint() + ";SharedAccessSignature=" + token
			s.start()
			in, date := s.startSession("bad")
			if c.name == "expired" {
				se, _ := time.Parse(time.RFC3339, queryValue(token, "se"))
				eventually(t, 10*time.Second, "the SAS expiry", func() bool { return time.Now().After(se.Add(time.Second)) })
			}
			sum := writeFile(t, in, "kept.txt", []byte("must not be lost"))
			eventually(t, 20*time.Second, "a permanent upload failure in status", func() bool {
				f, _ := s.status()["failing"].([]any)
				for _, e := range f {
					if m := e.(map[string]any); m["permanent"] == true && m["step"] == "upload" && strings.Contains(m["error"].(string), "403") {
						return true
					}
				}
				return false
			})
			found := false
			for _, l := range errorLines(s) {
				if l["step"] == "upload" && l["permanent"] == true && strings.Contains(l["file"].(string), "kept.txt") {
					found = true
				}
			}
			if !found {
				t.Fatalf("no ERROR log line for the refused upload:\n%s", s.logs.String())
			}
			if got := filesUnder(t, s.processing()); len(got) != 1 || !strings.HasSuffix(got[0], "kept.txt") {
				t.Fatalf("processing root holds %v, want the refused file", got)
			}
			s.kill()
			s.env["APP_AZURE_CONNECTION_STRING"] = "BlobEndpoint=" + az.BlobEndpoint() + ";SharedAccessSignature=" + accountSAS(t, fullSAS, time.Now().Add(time.Hour))
			s.start()
			waitBlobsContain(t, s.container(), date+"/bad/kept.txt", sum)
		})
	}
}

func queryValue(query, key string) string {
	for _, kv := range strings.Split(query, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return strings.ReplaceAll(v, "%3A", ":")
		}
	}
	return ""
}
