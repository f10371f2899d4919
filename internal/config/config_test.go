package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func minimal() map[string]string {
	return map[string]string{
		"APP_AZURE_AUTH":              "connection-string",
		"APP_AZURE_CONNECTION_STRING": "UseDevelopmentStorage=true",
		"APP_AZURE_CONTAINER":         "uploads",
	}
}

// The try timeout is a stall limit: a minute without progress by default,
// and it must be positive.
func TestAzureTryTimeout(t *testing.T) {
	c, err := Load(minimal())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.AzureTryTimeout(); got != time.Minute {
		t.Fatalf("default try timeout %v, want 1m0s", got)
	}
	e := minimal()
	e["APP_AZURE_TRY_TIMEOUT_S"] = "1.5"
	if c, err := Load(e); err != nil || c.AzureTryTimeout() != 1500*time.Millisecond {
		t.Fatalf("1.5: %v, %v", c.AzureTryTimeout(), err)
	}
	e["APP_AZURE_TRY_TIMEOUT_S"] = "0"
	var ce *Error
	if _, err := Load(e); !errors.As(err, &ce) || ce.Problems["APP_AZURE_TRY_TIMEOUT_S"] == "" {
		t.Fatalf("0 accepted: %v", err)
	}
}

// The staging budget's default is the documented one, and it must be
// positive.
func TestStagingBudgetDefault(t *testing.T) {
	c, err := Load(minimal())
	if err != nil {
		t.Fatal(err)
	}
	if c.LocalStagingMaxBytes != DefaultStagingMaxBytes {
		t.Fatalf("default staging budget %d, want %d", c.LocalStagingMaxBytes, int64(DefaultStagingMaxBytes))
	}
	e := minimal()
	e["APP_LOCAL_STAGING_MAX_BYTES"] = "0"
	var ce *Error
	if _, err := Load(e); !errors.As(err, &ce) || ce.Problems["APP_LOCAL_STAGING_MAX_BYTES"] == "" {
		t.Fatalf("a staging budget of 0 was accepted: %v", err)
	}
}

// problem loads env and returns what is said about name ("" when nothing).
func problem(t *testing.T, env map[string]string, name string) string {
	t.Helper()
	_, err := Load(env)
	var ce *Error
	if !errors.As(err, &ce) {
		return ""
	}
	return ce.Problems[name]
}

// The access tier takes Azure's four tiers in any case, empty keeps the
// account default, anything else stops start-up naming the variable.
func TestAccessTier(t *testing.T) {
	for in, want := range map[string]string{"": "", "Hot": "Hot", "cool": "Cool", "COLD": "Cold", "archive": "Archive"} {
		e := minimal()
		e["APP_AZURE_ACCESS_TIER"] = in
		c, err := Load(e)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if c.AccessTier() != want {
			t.Fatalf("%q: tier %q, want %q", in, c.AccessTier(), want)
		}
	}
	for _, bad := range []string{"Premium", "P10", "hot ", "Infrequent"} {
		e := minimal()
		e["APP_AZURE_ACCESS_TIER"] = bad
		if problem(t, e, "APP_AZURE_ACCESS_TIER") == "" {
			t.Fatalf("tier %q accepted", bad)
		}
	}
}

// Good tag lists parse to key -> template; placeholders stay for the store
// to expand per blob.
func TestBlobTagsParse(t *testing.T) {
	e := minimal()
	if c, err := Load(e); err != nil || c.BlobTags() != nil {
		t.Fatalf("unset: %v, %v", c.BlobTags(), err)
	}
	e["APP_AZURE_BLOB_TAGS"] = " site=plant-7, session={session},day={date}, empty=,odd=a+b-c.d/e:f=g_h i ,"
	c, err := Load(e)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"site": "plant-7", "session": "{session}", "day": "{date}", "empty": "", "odd": "a+b-c.d/e:f=g_h i"}
	got := c.BlobTags()
	if len(got) != len(want) {
		t.Fatalf("tags %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("tag %q = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	ten := make([]string, 10)
	for i := range ten {
		ten[i] = fmt.Sprintf("k%d=v", i)
	}
	e["APP_AZURE_BLOB_TAGS"] = strings.Join(ten, ",")
	if c, err := Load(e); err != nil || len(c.BlobTags()) != 10 {
		t.Fatalf("10 tags: %d, %v", len(c.BlobTags()), err)
	}
	e["APP_AZURE_BLOB_TAGS"] = strings.Repeat("k", 128) + "=" + strings.Repeat("v", 256)
	if _, err := Load(e); err != nil {
		t.Fatalf("longest key and value: %v", err)
	}
}

// Every list Azure would refuse stops start-up with a message naming
// APP_AZURE_BLOB_TAGS.
func TestBlobTagsRejected(t *testing.T) {
	eleven := make([]string, 11)
	for i := range eleven {
		eleven[i] = fmt.Sprintf("k%d=v", i)
	}
	for what, v := range map[string]string{
		"bad key chars":          "site#1=x",
		"non-ASCII key":          "größe=x",
		"bad value chars":        "site=plant,7;x=y",
		"value with a pipe":      "site=a|b",
		"unknown placeholder":    "host={host}",
		"11 tags":                strings.Join(eleven, ","),
		"empty key":              "=value",
		"missing =":              "site",
		"duplicate key":          "site=a,site=b",
		"key too long":           strings.Repeat("k", 129) + "=v",
		"value too long":         "k=" + strings.Repeat("v", 257),
		"too long once expanded": "k=" + strings.Repeat("v", 250) + "{session}",
	} {
		e := minimal()
		e["APP_AZURE_BLOB_TAGS"] = v
		msg := problem(t, e, "APP_AZURE_BLOB_TAGS")
		if msg == "" {
			t.Errorf("%s: %q accepted", what, v)
			continue
		}
		_, err := Load(e)
		if !strings.Contains(err.Error(), "APP_AZURE_BLOB_TAGS") {
			t.Errorf("%s: message does not name the variable: %v", what, err)
		}
	}
}

// Exclusion patterns are trimmed and empty entries dropped; a malformed
// pattern, or one with '/' (it could never match a base name), stops
// start-up naming APP_FILE_EXCLUDE.
func TestFileExclude(t *testing.T) {
	e := minimal()
	if c, err := Load(e); err != nil || c.FileExclude() != nil {
		t.Fatalf("unset: %v, %v", c.FileExclude(), err)
	}
	e["APP_FILE_EXCLUDE"] = " *.tmp, *.part ,,~*,[abc]?.log,"
	c, err := Load(e)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.FileExclude(), "|"); got != "*.tmp|*.part|~*|[abc]?.log" {
		t.Fatalf("patterns %q", got)
	}
	e["APP_FILE_EXTENSIONS"] = ".bin"
	if c, err := Load(e); err != nil || !c.Extensions()[".bin"] || len(c.FileExclude()) != 4 {
		t.Fatalf("both set: %v %v %v", c.Extensions(), c.FileExclude(), err)
	}
	for _, bad := range []string{"[", "*.tmp,a[", "x\\", "[a-", "sub/*.tmp"} {
		e := minimal()
		e["APP_FILE_EXCLUDE"] = bad
		_, err := Load(e)
		if problem(t, e, "APP_FILE_EXCLUDE") == "" || !strings.Contains(err.Error(), "APP_FILE_EXCLUDE") {
			t.Errorf("pattern list %q accepted: %v", bad, err)
		}
	}
}
