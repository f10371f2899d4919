package config

import (
	"errors"
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
