package config

import "testing"

// The staging budget's default is the documented one.
func TestStagingBudgetDefault(t *testing.T) {
	c, err := Load(map[string]string{"APP_AZURE_CONTAINER": "uploads", "APP_AZURE_CONNECTION_STRING": "UseDevelopmentStorage=true", "APP_AZURE_AUTH": "connection-string"})
	if err != nil {
		t.Fatal(err)
	}
	if c.LocalStagingMaxBytes != DefaultStagingMaxBytes {
		t.Fatalf("default staging budget %d, want %d", c.LocalStagingMaxBytes, int64(DefaultStagingMaxBytes))
	}
	if _, err := Load(map[string]string{"APP_AZURE_CONTAINER": "uploads", "APP_AZURE_CONNECTION_STRING": "x", "APP_LOCAL_STAGING_MAX_BYTES": "0"}); err == nil {
		t.Fatal("a staging budget of 0 was accepted")
	}
}
