package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/edge/nfs-watcher-uploader/internal/azurite"
	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
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

// A blob whose stored size or MD5 differs from the source is not confirmed.
func TestVerifyRejectsAMismatch(t *testing.T) {
	s := open(t, "", Options{})
	ctx := context.Background()
	data := []byte("the real bytes")
	sum := md5.Sum(data)
	confirmed, err := s.Put(ctx, "a", bytes.NewReader(data), int64(len(data)), sum[:])
	if err != nil || !confirmed {
		t.Fatalf("single put: confirmed %v, %v", confirmed, err)
	}
	if err := s.Verify(ctx, "a", int64(len(data)), sum[:]); err != nil {
		t.Fatalf("verify of a good blob: %v", err)
	}
	other := md5.Sum([]byte("other bytes!!!"))
	if err := s.Verify(ctx, "a", int64(len(data)), other[:]); err == nil {
		t.Fatal("verify passed with a different MD5")
	}
	if err := s.Verify(ctx, "a", int64(len(data))+1, sum[:]); err == nil {
		t.Fatal("verify passed with a different size")
	}
	if err := s.Verify(ctx, "missing", 1, sum[:]); !errors.Is(err, ErrNotFound) {
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
	sum := md5.Sum(data)
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
	if _, err := s.Put(ctx, "big", bytes.NewReader(data), int64(len(data)), sum[:]); err == nil {
		t.Fatal("first attempt should fail")
	}
	first := puts.Load()
	if confirmed, err := s.Put(ctx, "big", bytes.NewReader(data), int64(len(data)), sum[:]); err != nil || confirmed {
		t.Fatalf("block list: confirmed %v (must be verified by read-back), %v", confirmed, err)
	}
	// Second attempt: blocks 5..9 and the commit; never blocks 0..4 again.
	if second := puts.Load() - first; second != 6 {
		t.Fatalf("second attempt sent %d PUTs, want 6 (5 missing blocks + commit)", second)
	}
	if err := s.Verify(ctx, "big", int64(len(data)), sum[:]); err != nil {
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
