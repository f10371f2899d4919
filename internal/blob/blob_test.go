package blob

import (
	"bytes"
	"context"
	"errors"
	"hash/crc64"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/edge/nfs-watcher-uploader/internal/azurite"
	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
	"github.com/edge/nfs-watcher-uploader/internal/object"
)

var az *azurite.Server

func TestMain(m *testing.M) {
	var err error
	az, err = azurite.Start()
	if err != nil {
		println(err.Error())
		os.Exit(1)
	}
	code := m.Run()
	az.Stop()
	os.Exit(code)
}

func open(t *testing.T, endpoint string, o Options) *Store {
	t.Helper()
	o.Container = strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	o.TryTimeout = 10 * time.Second
	s, err := Open(context.Background(), Credentials{Mode: "connection-string", ConnectionString: az.ConnectionString(endpoint), AuthTimeout: 10 * time.Second}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// A blob whose stored size or CRC64 differs from the source is not confirmed.
func TestVerifyRejectsAMismatch(t *testing.T) {
	s := open(t, "", Options{})
	ctx := context.Background()
	data := []byte("the real bytes")
	sum := crcOf(data)
	confirmed, err := s.Put(ctx, object.Object{Name: "a", Src: bytes.NewReader(data), Size: int64(len(data)), CRC64: sum})
	if err != nil || !confirmed {
		t.Fatalf("single put: confirmed %v, %v", confirmed, err)
	}
	if err := s.Verify(ctx, "a", int64(len(data)), sum); err != nil {
		t.Fatalf("verify of a good blob: %v", err)
	}
	if err := s.Verify(ctx, "a", int64(len(data)), crcOf([]byte("other bytes!!!"))); err == nil {
		t.Fatal("verify passed with a different CRC64")
	}
	if err := s.Verify(ctx, "a", int64(len(data))+1, sum); err == nil {
		t.Fatal("verify passed with a different size")
	}
	if err := s.Verify(ctx, "missing", 1, sum); !errors.Is(err, ErrNotFound) {
		t.Fatalf("verify of a missing blob: %v", err)
	}
}

// After a failed attempt, blocks already staged are not sent again.
func TestBlockUploadResumesStagedBlocks(t *testing.T) {
	p, err := faultproxy.Start(az.BlobEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s := open(t, p.URL()+"/devstoreaccount1", Options{SinglePutSize: 1024, BlockSize: 1024, Concurrency: 1})
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 640) // 10 blocks
	sum := crcOf(data)
	var puts atomic.Int64
	p.SetRule(func(r *http.Request) faultproxy.Action {
		if r.Method != http.MethodPut {
			return faultproxy.Pass
		}
		if puts.Add(1) == 6 { // block 5; a 403 is not retried by the SDK
			return faultproxy.Fail403
		}
		return faultproxy.Pass
	})
	if _, err := s.Put(ctx, object.Object{Name: "big", Src: bytes.NewReader(data), Size: int64(len(data)), CRC64: sum, BlockCRC: blockCRCs(data, 1024)}); err == nil {
		t.Fatal("first attempt should fail")
	}
	first := puts.Load()
	if confirmed, err := s.Put(ctx, object.Object{Name: "big", Src: bytes.NewReader(data), Size: int64(len(data)), CRC64: sum, BlockCRC: blockCRCs(data, 1024)}); err != nil || confirmed {
		t.Fatalf("block list: confirmed %v (must be verified by read-back), %v", confirmed, err)
	}
	// Second attempt: blocks 5..9 and the commit; never blocks 0..4 again.
	if second := puts.Load() - first; second != 6 {
		t.Fatalf("second attempt sent %d PUTs, want 6 (5 missing blocks + commit)", second)
	}
	if err := s.Verify(ctx, "big", int64(len(data)), sum); err != nil {
		t.Fatal(err)
	}
	got, err := s.ContainerClient().NewBlockBlobClient("big").GetBlockList(ctx, blockblob.BlockListTypeCommitted, nil)
	if err != nil || len(got.CommittedBlocks) != 10 {
		t.Fatalf("committed blocks: %v %v", len(got.CommittedBlocks), err)
	}
	dl, err := s.ContainerClient().NewBlobClient("big").DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(dl.Body)
	dl.Body.Close()
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("blob bytes differ from the source")
	}
}

// crcOf is Azure's CRC64 with the standard library's table: an
// implementation independent of the pipeline's.
func crcOf(data []byte) uint64 { return crc64.Checksum(data, crcTable) }

var crcTable = crc64.MakeTable(0x9A6C9329AC4BC9B5)

// blockCRCs is what the pipeline computes while hashing a file.
func blockCRCs(data []byte, blockSize int) []uint64 {
	var out []uint64
	for off := 0; off < len(data); off += blockSize {
		out = append(out, crcOf(data[off:min(off+blockSize, len(data))]))
	}
	return out
}

// A source rewritten in place after it was hashed (same size, other bytes)
// is refused block by block: the blob is never committed with bytes that
// were not hashed, whatever CRC64 the commit would have claimed.
func TestChangedSourceIsNeverCommitted(t *testing.T) {
	s := open(t, "", Options{SinglePutSize: 1024, BlockSize: 1024, Concurrency: 2})
	ctx := context.Background()
	hashed := bytes.Repeat([]byte("hashed bytes 16B"), 256) // 4 blocks
	sum := crcOf(hashed)
	crcs := blockCRCs(hashed, 1024)
	rewritten := bytes.Clone(hashed)
	copy(rewritten[2048:], "REWRITTEN")
	_, err := s.Put(ctx, object.Object{Name: "mixed", Src: bytes.NewReader(rewritten), Size: int64(len(rewritten)), CRC64: sum, BlockCRC: crcs})
	if !bloberror.HasCode(err, bloberror.CRC64Mismatch) {
		t.Fatalf("put of changed bytes: %v, want CRC64Mismatch", err)
	}
	if _, err := s.Stat(ctx, "mixed"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a blob was committed from changed bytes: %v", err)
	}
	// The same call with the hashed bytes goes through.
	if _, err := s.Put(ctx, object.Object{Name: "mixed", Src: bytes.NewReader(hashed), Size: int64(len(hashed)), CRC64: sum, BlockCRC: crcs}); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, "mixed", int64(len(hashed)), sum); err != nil {
		t.Fatal(err)
	}
}

// A container deleted while the service runs is created again by the next
// upload, for single puts and block lists alike.
func TestDeletedContainerIsCreatedAgain(t *testing.T) {
	s := open(t, "", Options{SinglePutSize: 1024, BlockSize: 1024})
	ctx := context.Background()
	for _, size := range []int{100, 3000} {
		if _, err := s.ContainerClient().Delete(ctx, nil); err != nil {
			t.Fatal(err)
		}
		// Azurite, like Azure, may refuse a create right after a delete;
		// wait until the container is really gone.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := s.ContainerClient().GetProperties(ctx, nil)
			if bloberror.HasCode(err, bloberror.ContainerNotFound) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("container still there: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		data := bytes.Repeat([]byte{'x'}, size)
		sum := crcOf(data)
		var crcs []uint64
		if s.BlockSize(int64(size)) > 0 {
			crcs = blockCRCs(data, 1024)
		}
		if _, err := s.Put(ctx, object.Object{Name: "again", Src: bytes.NewReader(data), Size: int64(size), CRC64: sum, BlockCRC: crcs}); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if err := s.Verify(ctx, "again", int64(size), sum); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
	}
}
