package e2e

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write docs/status-page.png from the status page test")

// browser starts headless Debian chromium. In CI (CI=true) a missing
// browser is a failure: the Makefile installs it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (make test installs it: apt-get install chromium)")
		}
		t.Skip("chromium is not installed; apt-get install -y --no-install-recommends chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1100, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no deadline on it
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// waitJS polls a JavaScript condition in the page until it is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(tctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
		t.Fatalf("page never showed %s (%s): %v\npage text:\n%s", what, expr, err, page)
	}
}

func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById(`+quoteJS(id)+`).textContent`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func quoteJS(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// A real browser loads / from the real binary: it shows the session, a
// counter that moves when a file is uploaded, the skipped list and the
// bandwidth limit in force with where it came from and when it changes; stop
// asks for confirmation and the page shows the session ended. At phone
// width nothing overflows sideways.
func TestStatusPage(t *testing.T) {
	ctx := browser(t)
	s := newSvc(t).start()
	in, date := s.startSession("page-cam")
	if err := os.Symlink("/etc/hostname", filepath.Join(in, "link-to-etc")); err != nil {
		t.Fatal(err)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+s.addr+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the session", `document.getElementById("session").textContent === "page-cam"`)
	waitJS(t, ctx, "state active", `document.getElementById("state").textContent === "active"`)
	if got := text(t, ctx, "c-files_processed"); !strings.HasPrefix(got, "0") {
		t.Fatalf("files uploaded before any file: %q", got)
	}

	sum := writeFile(t, in, "frame-0001.bin", []byte(strings.Repeat("frame ", 40000)))
	waitBlobs(t, s.container(), map[string]string{date + "/page-cam/frame-0001.bin": sum}, 20*time.Second)
	waitJS(t, ctx, "one file uploaded", `document.querySelector("#c-files_processed b").textContent === "1"`)
	waitJS(t, ctx, "the skipped symlink", `document.getElementById("skipped").textContent.includes("link-to-etc")`)
	waitJS(t, ctx, "an upload rate", `document.getElementById("chart").querySelectorAll("rect").length > 0`)

	// The bandwidth limit: none configured, then an operator's override,
	// then a timetable with its next change (the instant the API reports).
	waitJS(t, ctx, "no bandwidth limit", `document.getElementById("bandwidth_limit").textContent === "unlimited"`)
	if code, m := s.do("PUT", "/v1/bandwidth", `{"limit":"2M"}`); code != 200 {
		t.Fatalf("PUT 2M: %d %v", code, m)
	}
	waitJS(t, ctx, "the 2M override", `document.getElementById("bandwidth_limit").textContent === "2.0 MiB/s"`)
	if got := text(t, ctx, "bandwidth_source"); got != "live override \u201c2M\u201d" {
		t.Errorf("limit set by %q, want the live override 2M", got)
	}
	if got := text(t, ctx, "bandwidth_next_change"); got != "—" {
		t.Errorf("next change %q for a plain rate, want none", got)
	}
	code, m := s.do("PUT", "/v1/bandwidth", `{"limit":"08:00,2M 20:00,512k"}`)
	next, _ := m["bandwidth_next_change"].(string)
	if code != 200 || next == "" {
		t.Fatalf("PUT a timetable: %d %v", code, m)
	}
	waitJS(t, ctx, "the timetable's next change", `document.getElementById("bandwidth_next_change").dateTime === `+quoteJS(next))
	want := map[int64]string{2 << 20: "2.0 MiB/s", 512 << 10: "512.0 KiB/s"}[num(m, "bandwidth_limit")]
	if got := text(t, ctx, "bandwidth_limit"); got != want || want == "" {
		t.Errorf("limit %q under the timetable, want %q (the API says %v)", got, want, m["bandwidth_limit"])
	}
	if got := text(t, ctx, "bandwidth_source"); got != "live override \u201c08:00,2M 20:00,512k\u201d" {
		t.Errorf("limit set by %q, want the live override timetable", got)
	}

	if *updateScreenshot {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll("../../docs", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("../../docs/status-page.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("wrote docs/status-page.png")
	}

	// Stop asks first; the test accepts as an operator would.
	var mu sync.Mutex
	var asked []string
	dctx, stopDialogs := context.WithCancel(ctx)
	defer stopDialogs()
	dialogs := chromedp.Events(dctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			mu.Lock()
			asked = append(asked, string(ev.Type)+": "+ev.Message)
			mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("stop"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "state idle", `document.getElementById("state").textContent === "idle"`)
	mu.Lock()
	if len(asked) != 1 || !strings.HasPrefix(asked[0], "confirm") || !strings.Contains(asked[0], "page-cam") {
		t.Errorf("dialogs %q, want one confirm naming the session", asked)
	}
	mu.Unlock()
	if st := s.status(); st["active"] != false {
		t.Fatalf("service still active after stop from the page: %v", st)
	}

	// Phone width: the page reflows instead of scrolling sideways.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "no sideways scrolling at 390 px", `document.documentElement.scrollWidth <= window.innerWidth`)
}
