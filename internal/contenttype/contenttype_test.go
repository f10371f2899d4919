package contenttype

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The types users expect for common data files, matched without regard to
// case; anything unknown is application/octet-stream.
func TestForName(t *testing.T) {
	for name, want := range map[string]string{
		"a.json":             "application/json",
		"20260101/s/x.JSON":  "application/json",
		"b.csv":              "text/csv",
		"c.txt":              "text/plain",
		"d.jpg":              "image/jpeg",
		"e.JPEG":             "image/jpeg",
		"f.png":              "image/png",
		"g.mp4":              "video/mp4",
		"G.Mp4":              "video/mp4",
		"h.parquet":          "application/vnd.apache.parquet",
		"H.PARQUET":          "application/vnd.apache.parquet",
		"i.tar.gz":           "application/gzip",
		"j.unknownext":       Default,
		"no-extension":       Default,
		"dir.d/no-extension": Default,
		"trailing.":          Default,
	} {
		if got := ForName(name); got != want {
			t.Errorf("ForName(%q) = %q, want %q", name, got, want)
		}
	}
}

// The committed table is exactly what the generator makes from the pinned
// mime-types package, so a bump of the package shows up as a diff here.
func TestTableIsGenerated(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: cannot regenerate the table")
	}
	out := filepath.Join(t.TempDir(), "table.go")
	cmd := exec.Command(node, "../../scripts/gen-contenttypes.mjs", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		if bytes.Contains(b, []byte("Cannot find module")) {
			t.Skipf("mime-types is not installed (npm ci): %s", b)
		}
		t.Fatalf("generator: %v\n%s", err, b)
	}
	if b, err := exec.Command("gofmt", "-w", out).CombinedOutput(); err != nil {
		t.Fatalf("gofmt: %v\n%s", err, b)
	}
	want, _ := os.ReadFile(out)
	got, err := os.ReadFile("table.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("table.go differs from the generator's output: run go generate ./internal/contenttype")
	}
}
