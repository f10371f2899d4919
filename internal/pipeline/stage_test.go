package pipeline

import (
	"bytes"
	"context"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Small files are staged in memory, larger ones in a staging file; both
// give the file's exact bytes and CRC64, and a staging file is named for
// deletion at completion.
func TestStageSmallInMemoryLargeOnDisk(t *testing.T) {
	p, l := benchPipeline(t)
	for _, size := range []int{0, 1, 4096, smallBuf, smallBuf + 1, copyBuf, copyBuf + 1, 3*copyBuf + 7} {
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
		if sum := crc64.Checksum(data, azureCRC); !bytes.Equal(got, data) || src.crc64 != sum || src.size != int64(size) {
			t.Fatalf("size %d: staged %d bytes, crc64 %016x, want %016x", size, len(got), src.crc64, sum)
		}
		if onDisk := src.staging != ""; onDisk != (size > copyBuf) {
			t.Fatalf("size %d: staging file %q", size, src.staging)
		}
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// azureCRC is Azure's CRC64 with the standard library's table: a second,
// independent implementation.
var azureCRC = crc64.MakeTable(0x9A6C9329AC4BC9B5)

// The one-pass checksums equal Azure's CRC64 of the whole file and of each
// block, however the writes fall across block edges.
func TestSumsMatchAzureCRC64(t *testing.T) {
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	for _, block := range []int{0, 1, 63, 1024, 4096, 10000, 20000} {
		for _, write := range []int{1, 7, 100, 4096, 10000} {
			h := newSums(int64(block))
			for off := 0; off < len(data); off += write {
				h.Write(data[off:min(off+write, len(data))])
			}
			whole, blocks := h.finish()
			if want := crc64.Checksum(data, azureCRC); whole != want {
				t.Fatalf("block %d, writes of %d: whole %016x, want %016x", block, write, whole, want)
			}
			var want []uint64
			for off := 0; block > 0 && off < len(data); off += block {
				want = append(want, crc64.Checksum(data[off:min(off+block, len(data))], azureCRC))
			}
			if !slices.Equal(blocks, want) {
				t.Fatalf("block %d, writes of %d: %d block sums differ from %d expected", block, write, len(blocks), len(want))
			}
		}
	}
}
