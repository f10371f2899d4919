package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/edge/nfs-watcher-uploader/internal/azurite"
)

var (
	flagAzCopy = flag.String("azcopy", "", "AzCopy binary for the peer side (from cmd/bench/peer's npm package when empty; "+
		"the side is skipped when it is missing or does not run)")
	flagAzCopyConc = flag.Int("azcopy-concurrency", 0, "AZCOPY_CONCURRENCY_VALUE for AzCopy (its own default when 0)")
)

// peerBin is where `npm ci --prefix cmd/bench/peer` puts the binary; the
// package ships amd64 only.
var peerBin = filepath.Join("cmd", "bench", "peer", "node_modules", "@azure-tools", "azcopy-linux",
	"dist", "bin", "azcopy_linux_"+runtime.GOARCH)

// azCopy is a runnable AzCopy.
type azCopy struct {
	bin     string
	version string
	conns   string // its concurrency as its first job log states it
	ran     bool
}

// findAzCopy returns a runnable AzCopy, or why there is none.
func findAzCopy(work string) (*azCopy, error) {
	bin := *flagAzCopy
	if bin == "" {
		dir, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, peerBin)); err == nil {
				bin = filepath.Join(dir, peerBin)
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return nil, fmt.Errorf("%s not found: run `npm ci --prefix cmd/bench/peer` (make bench does) or pass -azcopy", peerBin)
			}
			dir = parent
		}
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return nil, err
	}
	name := bin
	if fi.Mode()&0o111 == 0 {
		// npm unpacks it without the executable bit.
		exe := filepath.Join(work, "azcopy")
		if err := copyFile(bin, exe, 0o755); err != nil {
			return nil, err
		}
		bin = exe
	}
	tmp, err := os.MkdirTemp(work, "azcopy-probe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--version")
	env, err := azCopyEnv(tmp)
	if err != nil {
		return nil, err
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		// e.g. "error while loading shared libraries: libsecret-1.so.0"
		return nil, fmt.Errorf("%s does not run (%v): %s", name, err, firstLine(out))
	}
	v, ok := strings.CutPrefix(firstLine(out), "azcopy version ")
	if !ok {
		return nil, fmt.Errorf("%s --version: %q", name, firstLine(out))
	}
	return &azCopy{bin: bin, version: v}, nil
}

// azCopyEnv keeps AzCopy's logs, plans and home in tmp, and sends anything
// not on loopback to a closed loopback port: it must reach no public host.
func azCopyEnv(tmp string) ([]string, error) {
	port, err := azurite.FreePort()
	if err != nil {
		return nil, err
	}
	nowhere := "http://127.0.0.1:" + strconv.Itoa(port)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + tmp,
		"AZCOPY_LOG_LOCATION=" + filepath.Join(tmp, "logs"),
		"AZCOPY_JOB_PLAN_LOCATION=" + filepath.Join(tmp, "plans"),
		"AZCOPY_DISABLE_SYSLOG=true",
		"HTTPS_PROXY=" + nowhere,
		"HTTP_PROXY=" + nowhere,
		"NO_PROXY=127.0.0.1,localhost",
	}
	if *flagAzCopyConc > 0 {
		env = append(env, "AZCOPY_CONCURRENCY_VALUE="+strconv.Itoa(*flagAzCopyConc))
	}
	return env, nil
}

// run uploads src recursively with `azcopy copy` into a new container of az
// through a container SAS, with AzCopy's defaults otherwise.
func (a *azCopy) run(az *azurite.Server, work, src string, w workload, i int) (result, error) {
	ctx := context.Background()
	cont := container("azcopy", w, i)
	c, err := az.Client()
	if err != nil {
		return result{}, err
	}
	if _, err := c.CreateContainer(ctx, cont, nil); err != nil {
		return result{}, err
	}
	cred, err := service.NewSharedKeyCredential(azurite.AccountName, azurite.AccountKey)
	if err != nil {
		return result{}, err
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP, // Azurite is plain http
		ExpiryTime:    time.Now().Add(24 * time.Hour),
		ContainerName: cont,
		Permissions:   (&sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, List: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		return result{}, err
	}
	dst := endpoint(az) + "/" + cont + "?" + qp.Encode()

	tmp, err := os.MkdirTemp(work, "azcopy-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(tmp)
	env, err := azCopyEnv(tmp)
	if err != nil {
		return result{}, err
	}
	outPath := filepath.Join(tmp, "stdout")
	out, err := os.Create(outPath)
	if err != nil {
		return result{}, err
	}
	defer out.Close()
	// --from-to: a 127.0.0.1 URL does not tell AzCopy it is a blob account.
	cmd := uploaderCmd(a.bin, "copy", src, dst, "--recursive", "--from-to", "LocalBlob")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	lg := &azLog{dir: filepath.Join(tmp, "logs"), tails: map[string]*tail{}, done: map[string]time.Time{}}
	var werr error
	timeout := 10*time.Minute + time.Duration(w.size*int64(w.files)/(20<<20))*time.Second
	if err := waitFor(timeout, func() bool {
		lg.poll()
		select {
		case werr = <-exited:
			return true
		default:
			return false
		}
	}); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return result{}, fmt.Errorf("azcopy: %w", err)
	}
	lg.poll()
	if werr != nil {
		return result{}, fmt.Errorf("azcopy: %v: %s", werr, lastLines(outPath, 3))
	}
	if a.conns == "" && lg.conns != "" {
		a.conns = lg.conns
	}
	if lg.start.IsZero() || len(lg.done) < w.files {
		return result{}, fmt.Errorf("azcopy's log shows %d of %d uploads", len(lg.done), w.files)
	}

	// Every file must be there: AzCopy's exit status alone is not trusted.
	var n int
	var bytes int64
	pager := c.NewListBlobsFlatPager(cont, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return result{}, err
		}
		for _, b := range page.Segment.BlobItems {
			n++
			if b.Properties != nil && b.Properties.ContentLength != nil {
				bytes += *b.Properties.ContentLength
			}
		}
	}
	if want := w.size * int64(w.files); n != w.files || bytes != want {
		return result{}, fmt.Errorf("container holds %d blobs, %d bytes; want %d, %d", n, bytes, w.files, want)
	}

	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return result{}, errors.New("no rusage for azcopy")
	}
	r := result{Files: n, Bytes: bytes, CPU: tv(ru.Utime) + tv(ru.Stime), PeakRSS: ru.Maxrss << 10}
	var last time.Time
	for _, t := range lg.done {
		r.Latencies = append(r.Latencies, t.Sub(lg.start).Seconds())
		if t.After(last) {
			last = t
		}
	}
	r.Seconds = last.Sub(lg.start).Seconds()
	a.ran = true
	return r, nil
}

// azLog follows AzCopy's job log while it runs. Its lines carry whole
// seconds and AzCopy itself notices the end of a job only on a 2 s
// progress tick, so each line is timed when it is first read instead.
type azLog struct {
	dir   string
	tails map[string]*tail
	start time.Time // the first "Starting transfer"
	done  map[string]time.Time
	conns string
}

func (l *azLog) poll() {
	now := time.Now()
	paths, _ := filepath.Glob(filepath.Join(l.dir, "*.log"))
	for _, p := range paths {
		t := l.tails[p]
		if t == nil {
			t = &tail{}
			l.tails[p] = t
		}
		for _, line := range t.lines(p) {
			switch {
			case strings.Contains(line, "] Starting transfer: "):
				if l.start.IsZero() {
					l.start = now
				}
			case strings.Contains(line, "] UPLOADSUCCESSFUL: "):
				_, url, _ := strings.Cut(line, "] UPLOADSUCCESSFUL: ")
				if _, seen := l.done[url]; !seen {
					l.done[url] = now
				}
			case strings.Contains(line, "Max concurrent network operations: "):
				_, v, _ := strings.Cut(line, "Max concurrent network operations: ")
				l.conns, _, _ = strings.Cut(v, " ")
			}
		}
	}
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func firstLine(b []byte) string {
	l, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(l)
}

// lastLines is the end of AzCopy's output, for an error message.
func lastLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep[max(0, len(keep)-n):], " / ")
}
