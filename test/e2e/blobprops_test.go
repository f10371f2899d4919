package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A real uploaded file, by single Put Blob and by block list, carries its
// extension's Content-Type, metadata mtime equal to the source file's
// modification time and session, the configured tier and the configured
// index tags with {session} and {date} expanded.
func TestBlobPropsEndToEnd(t *testing.T) {
	s := newSvc(t)
	s.env["APP_AZURE_ACCESS_TIER"] = "cool"
	s.env["APP_AZURE_BLOB_TAGS"] = "site=plant-7, session={session},day={date}"
	s.env["APP_AZURE_MAX_SINGLE_PUT_SIZE"] = "1024"
	s.env["APP_AZURE_MAX_BLOCK_SIZE"] = "1024"
	s.start()
	in, date := s.startSession("props-1")

	files := map[string][]byte{
		"small.json": []byte(`{"a":1}`),                   // one Put Blob
		"big.CSV":    bytes.Repeat([]byte("x,y\n"), 1000), // 4 blocks
	}
	types := map[string]string{"small.json": "application/json", "big.CSV": "text/csv"}
	mtimes := map[string]time.Time{}
	want := map[string]string{}
	for name, data := range files {
		want[date+"/props-1/"+name] = writeFile(t, in, name, data)
		fi, err := os.Stat(filepath.Join(in, name))
		if err != nil {
			t.Fatal(err)
		}
		mtimes[name] = fi.ModTime()
	}
	waitBlobs(t, s.container(), want, 30*time.Second)

	ctx := context.Background()
	cc := azc.ServiceClient().NewContainerClient(s.container())
	for name := range files {
		bc := cc.NewBlobClient(date + "/props-1/" + name)
		p, err := bc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.ContentType == nil || *p.ContentType != types[name] {
			t.Errorf("%s: Content-Type %v, want %s", name, p.ContentType, types[name])
		}
		meta := map[string]string{}
		for k, v := range p.Metadata {
			if v != nil {
				meta[strings.ToLower(k)] = *v
			}
		}
		got, err := time.Parse(time.RFC3339Nano, meta["mtime"])
		if err != nil || !got.Equal(mtimes[name]) {
			t.Errorf("%s: metadata mtime %q (%v), want the source's %v", name, meta["mtime"], err, mtimes[name].UTC())
		}
		if !strings.HasSuffix(meta["mtime"], "Z") {
			t.Errorf("%s: mtime %q is not UTC", name, meta["mtime"])
		}
		if meta["session"] != "props-1" {
			t.Errorf("%s: metadata session %q, want props-1", name, meta["session"])
		}
		if p.AccessTier == nil || *p.AccessTier != "Cool" {
			t.Errorf("%s: tier %v, want Cool", name, p.AccessTier)
		}
		tags, err := bc.GetTags(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		gotTags := map[string]string{}
		for _, tag := range tags.BlobTagSet {
			gotTags[*tag.Key] = *tag.Value
		}
		wantTags := map[string]string{"site": "plant-7", "session": "props-1", "day": date}
		if !mapsEqual(gotTags, wantTags) {
			t.Errorf("%s: tags %v, want %v", name, gotTags, wantTags)
		}
	}
}

// A bad tag list stops start-up with a message naming the variable, before
// the service listens.
func TestBlobPropsBadTagsStopStartUp(t *testing.T) {
	s := newSvc(t)
	s.env["APP_AZURE_BLOB_TAGS"] = "site=plant#7"
	s.launch()
	if code := s.waitExit(20 * time.Second); code == 0 {
		t.Fatal("service started with a bad tag list")
	}
	if !strings.Contains(s.logs.String(), "APP_AZURE_BLOB_TAGS") {
		t.Fatalf("exit message does not name APP_AZURE_BLOB_TAGS:\n%s", s.logs.String())
	}
}
