package pipeline

import (
	"bytes"
	"context"
	"crypto/md5"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Small files are staged in memory, larger ones in a staging file; both
// give the file's exact bytes and MD5, and a staging file is named for
// deletion at completion.
func TestStageSmallInMemoryLargeOnDisk(t *testing.T) {
	p, l := benchPipeline(t)
	for _, size := range []int{0, 1, 4096, copyBuf, copyBuf + 1, 3*copyBuf + 7} {
		data := bytes.Repeat([]byte{byte(size)}, size)
		for i := range data {
			data[i] ^= byte(i)
		}
		it := &Item{Session: "s", Date: "20260101", Name: "f"}
		if err := os.WriteFile(filepath.Join(l.ProcessingDir("20260101", "s"), "f"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := p.stage(context.Background(), it)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		got, err := io.ReadAll(io.NewSectionReader(src.r, 0, src.size))
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum(data)
		if !bytes.Equal(got, data) || !bytes.Equal(src.md5, sum[:]) || src.size != int64(size) {
			t.Fatalf("size %d: staged %d bytes, md5 %x, want %x", size, len(got), src.md5, sum)
		}
		if onDisk := src.staging != ""; onDisk != (size > copyBuf) {
			t.Fatalf("size %d: staging file %q", size, src.staging)
		}
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
