package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
)

// A slow uplink: two single-put files share 512 KiB/s, so each Put Blob
// takes about six times APP_AZURE_TRY_TIMEOUT_S. Tries that keep moving
// bytes are not cut off. The PUT count is only logged: on a loaded machine
// Azurite can pause for a second, which is a real stall and is retried.
func TestSlowLinkUploadsLargeFiles(t *testing.T) {
	s, p := newProxiedSvc(t)
	s.env["APP_AZURE_TRY_TIMEOUT_S"] = "1"
	const session = "slowlink"
	var puts atomic.Int64
	p.SetRule(func(r *http.Request) faultproxy.Action {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/"+session+"/") {
			puts.Add(1)
		}
		return faultproxy.Pass
	})
	p.SetRate(512 << 10)
	s.start()
	in, date := s.startSession(session)
	want := map[string]string{}
	for i := range 2 {
		name := fmt.Sprintf("big%d.bin", i)
		data := bytes.Repeat([]byte(fmt.Sprintf("%s/%d;", session, i)), 1536<<10/10)[:1536<<10] // 1.5 MiB
		want[date+"/"+session+"/"+name] = writeFile(t, in, name, data)
	}
	start := time.Now()
	waitBlobs(t, s.container(), want, 90*time.Second)
	t.Logf("2 × 1.5 MiB over 512 KiB/s with a 1 s stall limit: %v, %d blob PUT(s)", time.Since(start), puts.Load())
	s.waitNFSEmpty(session)
	st := s.status()
	if num(st, "files_failed") != 0 || num(st, "files_processed") != 2 {
		t.Fatalf("status: %v", st)
	}
}
