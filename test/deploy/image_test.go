package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestImageReportsItsCommit builds the binary with the Dockerfile's link
// flags and no Git metadata, as the image's build context has none, and
// checks that `version` reports the commit passed as COMMIT.
func TestImageReportsItsCommit(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`-ldflags "([^"]*)"`).FindSubmatch(df)
	if m == nil || !strings.Contains(string(m[1]), "$COMMIT") {
		t.Fatalf("the Dockerfile's go build passes no COMMIT in -ldflags")
	}
	const commit = "0123456789abcdef0123456789abcdef01234567"
	ldflags := strings.ReplaceAll(string(m[1]), "$COMMIT", commit)
	bin := filepath.Join(t.TempDir(), "nfs-watcher-uploader")
	build := exec.Command("go", "build", "-buildvcs=false", "-trimpath", "-ldflags", ldflags, "-o", bin, "./cmd/nfs-watcher-uploader")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "commit  "+commit) {
		t.Fatalf("version does not report the commit:\n%s", out)
	}
}
