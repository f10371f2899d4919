package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The race check that every service run gets under -race really fails on
// a race: a small racy program run the same way must be caught.
func TestRaceCheckCatchesARace(t *testing.T) {
	if !raceEnabled {
		t.Skip("only meaningful under -race")
	}
	bin := filepath.Join(t.TempDir(), "racy")
	build := exec.Command("go", "build", "-race", "-o", bin, "./testdata/racy")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	logs := &logBuf{}
	cmd := exec.Command(bin)
	cmd.Env = []string{goraceEnv}
	cmd.Stdout, cmd.Stderr = logs, logs
	start := time.Now()
	err := cmd.Run()
	if time.Since(start) > 4*time.Second {
		t.Errorf("the racy program ran to its end: GORACE halt_on_error not in force")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != raceExitCode {
		t.Errorf("exit %v, want code %d", err, raceExitCode)
	}
	if raceReport(logs.String(), err) == "" {
		t.Errorf("race not reported; output:\n%s", logs.String())
	}
	if raceReport("clean run\n", nil) != "" {
		t.Error("a clean run was reported as racy")
	}
}
