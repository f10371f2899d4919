package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/faultproxy"
)

// SPEC §6 "Several pods, one NFS": two processes share one incoming folder
// and one container, each with its own processing root (as the StatefulSet
// overlay gives each replica). Neither touches the other's files, and after
// SIGKILL each recovers exactly its own.
func TestTwoPodsShareOneNFS(t *testing.T) {
	p, err := faultproxy.Start(az.BlobEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	nfs := t.TempDir()
	container := newContainer(t)
	pods := make([]*svc, 2)
	for i := range pods {
		s := newSvc(t)
		s.env["APP_NFS_INCOMING_DIR"] = filepath.Join(nfs, "incoming")
		s.env["APP_NFS_PROCESSING_ROOT"] = filepath.Join(nfs, ".processing", fmt.Sprintf("uploader-%d", i))
		s.env["APP_AZURE_CONTAINER"] = container
		s.env["APP_AZURE_CONNECTION_STRING"] = az.ConnectionString(p.URL() + "/devstoreaccount1")
		pods[i] = s.start()
	}
	sessions := []string{"sess-a", "sess-b"}
	ins := make([]string, 2)
	var date string
	want := map[string]string{}
	for i, s := range pods {
		ins[i], date = s.startSession(sessions[i])
		for j := range 3 {
			name := fmt.Sprintf("live-%d.bin", j)
			want[date+"/"+sessions[i]+"/"+name] = writeFile(t, ins[i], name, fmt.Appendf(nil, "%s live %d", sessions[i], j))
		}
	}
	waitBlobs(t, container, want, 20*time.Second)
	for i, s := range pods {
		for _, l := range s.logs.lines() {
			if f, ok := l["file"]; ok && l["session"] != sessions[i] {
				t.Errorf("pod %d handled %v of session %v", i, f, l["session"])
			}
		}
		eventually(t, 10*time.Second, "each pod's GC", func() bool { return num(s.status(), "files_processed") == 3 })
	}

	// Hold every upload, so each pod has files claimed into its own root, then kill both.
	holdPuts(p)
	held := [2]map[string]string{{}, {}}
	for i := range pods {
		for j := range 2 {
			name := fmt.Sprintf("held-%d.bin", j)
			held[i][date+"/"+sessions[i]+"/"+name] = writeFile(t, ins[i], name, fmt.Appendf(nil, "%s held %d", sessions[i], j))
		}
	}
	roots := []string{pods[0].processing(), pods[1].processing()}
	eventually(t, 10*time.Second, "both pods holding two claimed files", func() bool {
		return p.Hanging.Load() == 4 &&
			len(filesUnder(t, filepath.Join(roots[0], date, "sess-a"))) == 2 &&
			len(filesUnder(t, filepath.Join(roots[1], date, "sess-b"))) == 2
	})
	for _, s := range pods {
		s.kill()
	}
	p.Release()
	p.Hold(nil)

	// Only pod 0 comes back: it uploads its own two files and resumes its
	// own session; pod 1's claimed files stay exactly where they are.
	pods[0].start()
	// (Released requests of the killed pods may still reach Azurite: the
	// blob store is not the evidence here, pod 0's logs and pod 1's root are.)
	for k, v := range held[0] {
		waitBlobsContain(t, container, k, v)
	}
	eventually(t, 10*time.Second, "pod 0 done with its files", func() bool {
		return num(pods[0].status(), "files_processed") == 2
	})
	for _, l := range pods[0].logs.lines() {
		if f, ok := l["file"]; ok && l["session"] != "sess-a" {
			t.Errorf("restarted pod 0 handled %v of session %v", f, l["session"])
		}
	}
	if st := pods[0].status(); st["session"] != "sess-a" || st["active"] != true {
		t.Fatalf("pod 0 resumed %v", st)
	}
	got := filesUnder(t, roots[1])
	slices.Sort(got)
	if wantLeft := []string{filepath.Join(date, "sess-b", "held-0.bin"), filepath.Join(date, "sess-b", "held-1.bin")}; !slices.Equal(got, wantLeft) {
		t.Fatalf("pod 1's root after pod 0 recovered: %v, want %v", got, wantLeft)
	}
	if _, err := os.Stat(filepath.Join(roots[0], date, "sess-b")); err == nil {
		t.Fatal("pod 0 created a folder for pod 1's session")
	}

	// Pod 1 comes back and recovers its own.
	pods[1].start()
	all := map[string]string{}
	for _, m := range []map[string]string{want, held[0], held[1]} {
		for k, v := range m {
			all[k] = v
		}
	}
	eventually(t, 10*time.Second, "pod 1 recovered its two files", func() bool {
		return num(pods[1].status(), "files_processed") == 2
	})
	waitBlobs(t, container, all, 20*time.Second)
	if st := pods[1].status(); st["session"] != "sess-b" || st["active"] != true {
		t.Fatalf("pod 1 resumed %v", st)
	}
	for i := range pods {
		eventually(t, 10*time.Second, "processing roots emptied", func() bool { return len(filesUnder(t, roots[i])) == 0 })
		if n := len(filesUnder(t, ins[i])); n != 0 {
			t.Fatalf("pod %d left %d files in incoming", i, n)
		}
	}
}
