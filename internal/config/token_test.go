package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func withSecretKey() map[string]string {
	return map[string]string{"APP_AZURE_CONTAINER": "uploads", "APP_AZURE_CONNECTION_STRING": "AccountKey=c2VjcmV0", "APP_AZURE_AUTH": "connection-string"}
}

func TestTokenFromFileIsTrimmed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := withSecretKey()
	env["APP_API_TOKEN_FILE"] = p
	c, err := Load(env)
	if err != nil {
		t.Fatal(err)
	}
	if c.APIToken != "s3cret" {
		t.Fatalf("token %q, want s3cret", c.APIToken)
	}
}

func TestTokenErrorsNameTheVariable(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string]map[string]string{
		"both":       {"APP_API_TOKEN": "a", "APP_API_TOKEN_FILE": empty},
		"unreadable": {"APP_API_TOKEN_FILE": filepath.Join(dir, "missing")},
		"empty file": {"APP_API_TOKEN_FILE": empty},
	} {
		env := withSecretKey()
		for k, v := range extra {
			env[k] = v
		}
		_, err := Load(env)
		var ce *Error
		if !errors.As(err, &ce) || ce.Problems["APP_API_TOKEN_FILE"] == "" {
			t.Errorf("%s: error %v does not name APP_API_TOKEN_FILE", name, err)
		}
	}
}

func TestEffectiveMasksSecrets(t *testing.T) {
	env := withSecretKey()
	env["APP_API_TOKEN"] = "tok-value"
	env["APP_AZURE_ACCOUNT_KEY"] = "key-value"
	env["APP_AZURE_ACCOUNT_NAME"] = "acct"
	got, err := Effective(env)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(Names()) {
		t.Fatalf("%d lines for %d variables", len(got), len(Names()))
	}
	all := ""
	vals := map[string]string{}
	for _, kv := range got {
		all += kv[0] + "=" + kv[1] + "\n"
		vals[kv[0]] = kv[1]
	}
	for _, s := range []string{"tok-value", "key-value", "c2VjcmV0"} {
		if strings.Contains(all, s) {
			t.Errorf("secret %q printed:\n%s", s, all)
		}
	}
	if vals["APP_AZURE_ACCOUNT_NAME"] != "acct" || vals["APP_WORKER_CONCURRENCY"] != "32" || vals["APP_METRICS_ADDR"] != "" {
		t.Errorf("effective values wrong:\n%s", all)
	}
}
