package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
	"github.com/edge/nfs-watcher-uploader/internal/object"
)

// putObject uploads data as name the way the pipeline does: CRC64 always,
// block CRCs when the store cuts the file in blocks.
func putObject(t *testing.T, s *Store, name string, data []byte, mtime time.Time) {
	t.Helper()
	sum := crcOf(data)
	var crcs []uint64
	if bs := s.BlockSize(int64(len(data))); bs > 0 {
		crcs = blockCRCs(data, int(bs))
	}
	_, err := s.Put(context.Background(), object.Object{
		Name: name, Src: bytes.NewReader(data), Size: int64(len(data)), CRC64: sum, BlockCRC: crcs,
		Session: "cam-1", Date: "20260102", Mtime: mtime,
	})
	if err != nil {
		t.Fatalf("put %s (%d bytes): %v", name, len(data), err)
	}
}

// metaValue reads a metadata key whatever case the SDK gives it back in.
func metaValue(m map[string]*string, key string) (string, bool) {
	for k, v := range m {
		if strings.EqualFold(k, key) && v != nil {
			return *v, true
		}
	}
	return "", false
}

// sizes are one file per upload path: a single Put Blob and a block list.
var sizes = map[string]int{"put-blob": 100, "block-list": 3000}

// Every blob, on both upload paths, carries the Content-Type of its
// extension, metadata mtime (rclone's format, UTC, nanoseconds) and
// session, the configured tier and the index tags with {session} and {date}
// expanded; a single Put Blob gets the Content-MD5 the service computes. Read back from Azurite.
func TestBlobProperties(t *testing.T) {
	s := open(t, "", Options{SinglePutSize: 1024, BlockSize: 1024, AccessTier: "Cool", Tags: map[string]string{
		"site": "plant-7", "session": "{session}", "day": "{date}", "both": "{session}/{date}", "note": "a b+c/d:e=f_g.h-i",
	}})
	ctx := context.Background()
	mtime := time.Date(2024, 3, 5, 6, 7, 8, 123456789, time.FixedZone("UTC+1", 3600))
	wantTags := map[string]string{"site": "plant-7", "session": "cam-1", "day": "20260102", "both": "cam-1/20260102", "note": "a b+c/d:e=f_g.h-i"}
	types := map[string]string{
		"a.json": "application/json", "b.csv": "text/csv", "c.txt": "text/plain", "d.jpg": "image/jpeg",
		"e.jpeg": "image/jpeg", "f.png": "image/png", "g.mp4": "video/mp4", "h.parquet": "application/vnd.apache.parquet",
		"i.unknownext": "application/octet-stream", "j": "application/octet-stream", "K.JSON": "application/json", "l.Mp4": "video/mp4",
	}
	for path, size := range sizes {
		for file, wantType := range types {
			name := "20260102/cam-1/" + path + "/" + file
			data := bytes.Repeat([]byte{'p'}, size)
			putObject(t, s, name, data, mtime)
			bc := s.ContainerClient().NewBlobClient(name)
			p, err := bc.GetProperties(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.ContentType == nil || *p.ContentType != wantType {
				t.Errorf("%s: Content-Type %v, want %s", name, deref(p.ContentType), wantType)
			}
			// The service computes the Content-MD5 of a single Put Blob;
			// every blob carries the CRC64 that was verified on upload.
			if sum := md5.Sum(data); path == "put-blob" && !bytes.Equal(p.ContentMD5, sum[:]) {
				t.Errorf("%s: Content-MD5 %x, want %x", name, p.ContentMD5, sum)
			}
			if got, _ := metaValue(p.Metadata, MetaCRC64); got != fmt.Sprintf("%016x", crcOf(data)) {
				t.Errorf("%s: metadata crc64 %q, want %016x", name, got, crcOf(data))
			}
			got, ok := metaValue(p.Metadata, "mtime")
			if got != "2024-03-05T05:07:08.123456789Z" {
				t.Errorf("%s: metadata mtime %q (present %v), want 2024-03-05T05:07:08.123456789Z", name, got, ok)
			}
			if back, err := time.Parse(time.RFC3339Nano, got); err != nil || !back.Equal(mtime) {
				t.Errorf("%s: mtime %q reads back as %v (%v), want %v", name, got, back, err, mtime)
			}
			if got, _ := metaValue(p.Metadata, "session"); got != "cam-1" {
				t.Errorf("%s: metadata session %q, want cam-1 (all: %v)", name, got, p.Metadata)
			}
			if p.AccessTier == nil || *p.AccessTier != string(blob.AccessTierCool) {
				t.Errorf("%s: tier %v, want Cool", name, deref(p.AccessTier))
			}
			tags, err := bc.GetTags(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			gotTags := map[string]string{}
			for _, tag := range tags.BlobTagSet {
				gotTags[deref(tag.Key)] = deref(tag.Value)
			}
			if fmt.Sprint(gotTags) != fmt.Sprint(wantTags) {
				t.Errorf("%s: tags %v, want %v", name, gotTags, wantTags)
			}
		}
	}
}

// Each tier is set on both paths; with no tier and no tags the blob keeps
// the account default (Azurite: Hot, inferred) and has no tags.
func TestAccessTiers(t *testing.T) {
	ctx := context.Background()
	mtime := time.Now()
	for _, tier := range []string{"Hot", "Cool", "Cold", "Archive", ""} {
		s := open(t, "", Options{SinglePutSize: 1024, BlockSize: 1024, AccessTier: tier})
		for path, size := range sizes {
			name := fmt.Sprintf("tier-%s/%s.bin", tier, path)
			putObject(t, s, name, bytes.Repeat([]byte{'t'}, size), mtime)
			bc := s.ContainerClient().NewBlobClient(name)
			p, err := bc.GetProperties(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := tier
			if tier == "" {
				want = "Hot"
				if p.AccessTierInferred == nil || !*p.AccessTierInferred {
					t.Errorf("%s: tier not inferred (%v): a tier was sent", name, deref(p.AccessTierInferred))
				}
			}
			if deref(p.AccessTier) != want {
				t.Errorf("%s: tier %q, want %q", name, deref(p.AccessTier), want)
			}
			if tier == "" {
				tags, err := bc.GetTags(ctx, nil)
				if err != nil || len(tags.BlobTagSet) != 0 {
					t.Errorf("%s: tags %v, %v; want none", name, tags.BlobTagSet, err)
				}
			}
		}
	}
}

// What goes on the wire to Azure: the Put Blob and the Put Block List carry
// the tier, tags, metadata and content type headers; without a tier or tags
// configured, neither header is sent (the account default applies).
func TestPropertyHeadersOnTheWire(t *testing.T) {
	p, err := faultproxy.Start(az.BlobEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	seen := map[string]http.Header{} // "blob" or "blocklist" -> headers
	p.SetRule(func(r *http.Request) faultproxy.Action {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/wire-") {
			kind := "blob"
			switch r.URL.Query().Get("comp") {
			case "block":
				return faultproxy.Pass
			case "blocklist":
				kind = "blocklist"
			}
			mu.Lock()
			seen[strings.TrimPrefix(r.URL.Path[strings.LastIndex(r.URL.Path, "/wire-"):], "/")+" "+kind] = r.Header.Clone()
			mu.Unlock()
		}
		return faultproxy.Pass
	})
	mtime := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	with := open(t, p.URL()+"/devstoreaccount1", Options{SinglePutSize: 1024, BlockSize: 1024, AccessTier: "Archive", Tags: map[string]string{"s": "{session}", "d": "{date}"}})
	without := open(t, p.URL()+"/devstoreaccount1", Options{SinglePutSize: 1024, BlockSize: 1024})
	for path, size := range sizes {
		putObject(t, with, "wire-with-"+path+".csv", bytes.Repeat([]byte{'w'}, size), mtime)
		putObject(t, without, "wire-without-"+path+".csv", bytes.Repeat([]byte{'w'}, size), mtime)
	}
	mu.Lock()
	defer mu.Unlock()
	for path, kind := range map[string]string{"put-blob": "blob", "block-list": "blocklist"} {
		h := seen["wire-with-"+path+".csv "+kind]
		if h == nil {
			t.Fatalf("%s: no %s request seen (saw %v)", path, kind, keys(seen))
		}
		tags, _ := url.ParseQuery(h.Get("x-ms-tags"))
		for k, want := range map[string]string{
			"x-ms-access-tier": "Archive", "x-ms-meta-mtime": "2025-01-02T03:04:05Z", "x-ms-meta-session": "cam-1",
			"x-ms-blob-content-type": "text/csv",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
		if tags.Get("s") != "cam-1" || tags.Get("d") != "20260102" || len(tags) != 2 {
			t.Errorf("%s: x-ms-tags %q", path, h.Get("x-ms-tags"))
		}
		h = seen["wire-without-"+path+".csv "+kind]
		if h == nil {
			t.Fatalf("%s: no %s request seen without tier", path, kind)
		}
		for _, k := range []string{"x-ms-access-tier", "x-ms-tags"} {
			if _, ok := h[http.CanonicalHeaderKey(k)]; ok {
				t.Errorf("%s: %s sent with nothing configured: %q", path, k, h.Get(k))
			}
		}
		if h.Get("x-ms-meta-mtime") == "" || h.Get("x-ms-blob-content-type") != "text/csv" {
			t.Errorf("%s: metadata or content type missing without tier/tags: %v", path, h)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
