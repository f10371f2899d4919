package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// APP_AZURE_CA_FILE adds a private CA to the system pool; a missing file or
// one without a certificate is a configuration error naming the variable.
func TestAzureCAFile(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "ca.pem")
	os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o644)

	if c, err := Load(minimal()); err != nil || c.RootCAs() != nil {
		t.Fatalf("unset: pool %v, %v", c.RootCAs(), err)
	}
	e := minimal()
	e["APP_AZURE_CA_FILE"] = good
	c, err := Load(e)
	if err != nil || c.RootCAs() == nil {
		t.Fatalf("good file: %v", err)
	}
	if !slices.Contains(Names(), "APP_AZURE_CA_FILE") || slices.Contains(Names(), Prefix) {
		t.Fatalf("Names: %v", Names())
	}
	for _, bad := range []string{junk, filepath.Join(dir, "missing.pem")} {
		e["APP_AZURE_CA_FILE"] = bad
		var ce *Error
		if _, err := Load(e); !errors.As(err, &ce) || ce.Problems["APP_AZURE_CA_FILE"] == "" {
			t.Errorf("%s accepted: %v", bad, err)
		}
	}
}

// A SAS token in the account URL is only used by auto: default would send
// a bearer token and ignore it, so it is refused at start-up.
func TestSASURLNeedsAuto(t *testing.T) {
	e := map[string]string{"APP_AZURE_CONTAINER": "uploads", "APP_AZURE_AUTH": "default",
		"APP_AZURE_ACCOUNT_URL": "https://acct.blob.core.windows.net/?sv=2024-08-04&sig=abc"}
	var ce *Error
	if _, err := Load(e); !errors.As(err, &ce) || !strings.Contains(ce.Problems["APP_AZURE_ACCOUNT_URL"], "SAS") {
		t.Fatalf("default with a SAS URL: %v", err)
	}
	e["APP_AZURE_AUTH"] = "auto"
	if _, err := Load(e); err != nil {
		t.Fatalf("auto with a SAS URL: %v", err)
	}
}
