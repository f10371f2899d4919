// Command bench measures the service against the raw azblob SDK on the same
// files and the same parallelism, each side on a fresh, warmed-up Azurite of
// its own, and prints one table.
// Where AzCopy is installed (cmd/bench/peer) it is measured too, as a peer
// with its own defaults.
//
//	go run ./cmd/bench                          # every workload, 3 runs each
//	go run ./cmd/bench -workloads 1MiB -runs 5
//
// It needs Azurite from `npm ci`, and AzCopy from `npm ci --prefix
// cmd/bench/peer` and Debian's libsecret-1-0 (make bench does both).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	sdkblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	azcontainer "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/minio/crc64nvme"

	"github.com/edge/nfs-watcher-uploader/internal/azurite"
	"github.com/edge/nfs-watcher-uploader/internal/blob"
	"github.com/edge/nfs-watcher-uploader/internal/procstat"
)

type workload struct {
	name  string
	files int
	size  int64
}

var all = []workload{
	{"4KiB", 2000, 4 << 10},
	{"1MiB", 200, 1 << 20},
	{"256MiB", 4, 256 << 20},
	{"4GiB", 1, 4 << 30},
}

var (
	flagRuns      = flag.Int("runs", 3, "measurements per workload and side (medians are reported)")
	flagWorkloads = flag.String("workloads", "4KiB,1MiB,256MiB,4GiB", "comma list of workloads")
	flagWorkers   = flag.Int("workers", 32, "files uploaded at once (APP_WORKER_CONCURRENCY, the service's default, and the raw side)")
	flagStaging   = flag.String("staging", "copy", "APP_STAGING_MODE of the service")
	flagPoll      = flag.Float64("poll", 0.5, "APP_POLL_INTERVAL_S of the service")
	flagAge       = flag.Float64("age", 1, "APP_MIN_FILE_AGE_S of the service")
	flagBin       = flag.String("bin", "", "service binary (built from ./cmd/nfs-watcher-uploader when empty)")
	flagDir       = flag.String("dir", "", "work folder; generated files are kept there between runs (temp when empty)")
	flagTogether  = flag.Bool("together", false, "measure the service and the raw SDK at the same time (loopback only; AzCopy still runs on its own)")
	flagEnv       = flag.String("env", "", "extra APP_* settings for the service, comma separated (e.g. APP_AZURE_MAX_CONCURRENCY=16)")

	// The raw side runs in a child process of this binary, so its CPU and
	// memory are its own.
	flagRaw      = flag.Bool("raw", false, "internal: upload -raw-dir with the SDK and print JSON")
	flagRawDir   = flag.String("raw-dir", "", "internal")
	flagRawConn  = flag.String("raw-conn", "", "internal")
	flagRawCRC   = flag.Bool("raw-crc64", false, "the raw side sends each Put Blob with the SDK's own CRC64 (the integrity the service has)")
	flagRawCont  = flag.String("raw-container", "", "internal")
	flagRawProps = flag.Bool("raw-props", false, "the raw side sends files up to 64 KiB as the service does (CRC64 on the request and in metadata, mtime and session metadata, Content-Type, date/session prefix), to tell the service's own cost from its requests'")
)

// result is one measured run of one side.
type result struct {
	// Seconds is the transfer window: from the first file being taken (the
	// service found it stable; the raw side started) to the last blob
	// committed. Detection (polls, minimum age) is in Latencies instead.
	Seconds   float64   `json:"seconds"`
	Bytes     int64     `json:"bytes"`
	Files     int       `json:"files"`
	CPU       float64   `json:"cpu"`  // user+system seconds of the uploading process
	PeakRSS   int64     `json:"rss"`  // bytes
	Latencies []float64 `json:"lats"` // seconds, per file
	// AzuriteCPU is Azurite's user+system seconds during the side's run: the
	// emulator is one Node process, and on a small machine its CPU bounds
	// throughput (it also checks every CRC64 on that one core).
	AzuriteCPU float64 `json:"-"`
}

// mbps is the side's throughput in MB/s.
func (r result) mbps() float64 { return float64(r.Bytes) / r.Seconds / 1e6 }

func main() {
	flag.Parse()
	if *flagTouch > 0 {
		if err := touchMain(*flagTouch); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *flagHostSpeed > 0 {
		if err := hostSpeed(*flagHostSpeed); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *flagRaw {
		if err := rawMain(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var err error
	work := *flagDir
	if work == "" {
		if work, err = os.MkdirTemp("", "nwu-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	bin := *flagBin
	if bin == "" {
		bin = filepath.Join(work, "nfs-watcher-uploader")
		b := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/nfs-watcher-uploader")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build service: %w", err)
		}
	}
	if err := useFastCRC64(work); err != nil {
		return err
	}
	pinning, err := pinSelf()
	if err != nil {
		return err
	}
	reporting, restore, err := pageReporting()
	if err != nil {
		return err
	}
	defer restore()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var ls linkSpec
	if *flagTogether && *flagLink != "" {
		return errors.New("-together measures on loopback only: leave out -link")
	}
	if *flagLink != "" {
		if ls, err = parseLink(*flagLink); err != nil {
			return err
		}
	}
	azc, err := findAzCopy(work)
	if err != nil {
		fmt.Fprintln(os.Stderr, "AzCopy side skipped:", err)
	}
	var rows []string
	for _, w := range all {
		if !slices.Contains(strings.Split(*flagWorkloads, ","), w.name) {
			continue
		}
		src := filepath.Join(work, "src", w.name)
		if err := generate(src, w); err != nil {
			return err
		}
		// The staging copies and both Azurites hold the workload's bytes.
		if err := touchMemory(self, min(3*w.size*int64(w.files), 6<<30)); err != nil {
			return err
		}
		var svc, raw, peer []result
		for i := range *flagRuns {
			// A fresh in-memory Azurite for each side of each run: it frees
			// deleted blobs lazily, a 4 GiB workload would reach its memory
			// limit, and it slows as it holds more blobs, which would charge
			// the side measured second.
			var s, r result
			if *flagTogether {
				s, r, err = runTogether(bin, self, work, src, w, i)
			} else {
				s, r, err = runInTurn(ls, bin, self, work, src, w, i)
			}
			if err != nil {
				return err
			}
			svc, raw = append(svc, s), append(raw, r)
			// One run's ratio, to show how much runs vary.
			fmt.Fprintf(os.Stderr, "%s run %d/%d: the service's CPU per GB is %.2f× the raw SDK's\n", w.name, i+1, *flagRuns,
				s.CPU/float64(s.Bytes)/(r.CPU/float64(r.Bytes)))
			if azc != nil {
				r, err := runAzCopy(azc, ls, work, src, w, i)
				if err != nil {
					return fmt.Errorf("%s azcopy: %w", w.name, err)
				}
				peer = append(peer, r)
				fmt.Fprintf(os.Stderr, "%.1f MB/s\n", r.mbps())
			}
		}
		rows = append(rows, tableRows(w, svc, raw, peer)...)
	}
	peerDesc := ""
	if azc != nil && azc.ran {
		how := "its defaults (connections by CPU count, "
		if azc.conns != "" {
			how = fmt.Sprintf("its defaults (%s connections by CPU count, ", azc.conns)
		}
		if *flagAzCopyConc > 0 {
			how = fmt.Sprintf("its defaults but AZCOPY_CONCURRENCY_VALUE=%d (", *flagAzCopyConc)
		}
		peerDesc = fmt.Sprintf("; AzCopy %s: copy --recursive --from-to LocalBlob with %sblock size by file size, INFO log, length check)",
			azc.version, how)
	}
	fmt.Printf("\nservice: APP_STAGING_MODE=%s APP_WORKER_CONCURRENCY=%d APP_POLL_INTERVAL_S=%g APP_MIN_FILE_AGE_S=%g %s; raw: azblob UploadFile%s, %d files at once%s; medians of %d runs\n\n",
		*flagStaging, *flagWorkers, *flagPoll, *flagAge, *flagEnv, rawDesc(), *flagWorkers, peerDesc, *flagRuns)
	if *flagLink != "" {
		fmt.Printf("%s\n\n", ls)
	}
	fmt.Printf("CPUs: %s\n\n", pinning)
	if *flagTogether {
		fmt.Printf("Sides: the service and the raw SDK measured at the same time (-together), each with its own Azurite\n\n")
	}
	fmt.Printf("Memory: %s\n\n", reporting)
	if *flagStockCRC {
		fmt.Printf("Azurite checks CRC64s with its own byte-at-a-time loop (-azurite-stock-crc64)\n\n")
	} else {
		fmt.Printf("Azurite checks CRC64s with a slicing-by-16 WebAssembly loop (azurite-crc64.js)\n\n")
	}
	fmt.Println("| workload | side | files/s | MB/s | CPU s/GB | peak RSS MiB | p50 latency s | p99 latency s | Azurite CPU ms/file |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
	return nil
}

// generate writes the workload's files once; later runs reuse them.
func generate(dir string, w workload) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) == w.files {
		return nil
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "generating %d files of %s...\n", w.files, w.name)
	rng := rand.New(rand.NewPCG(uint64(w.size), uint64(w.files)))
	block := make([]byte, 1<<20)
	for i := range w.files {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%05d.bin", w.name, i)))
		if err != nil {
			return err
		}
		for left := w.size; left > 0; {
			for j := 0; j < len(block); j += 8 {
				v := rng.Uint64()
				for k := range 8 {
					block[j+k] = byte(v >> (8 * k))
				}
			}
			n := min(left, int64(len(block)))
			if _, err := f.Write(block[:n]); err != nil {
				f.Close()
				return err
			}
			left -= n
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	old := time.Now().Add(-time.Hour)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		_ = os.Chtimes(filepath.Join(dir, e.Name()), old, old)
	}
	return nil
}

func container(side string, w workload, i int) string {
	return strings.ToLower(fmt.Sprintf("bench-%s-%s-%d-%d", side, w.name, i, os.Getpid()))
}

// runInTurn measures the service and then the raw SDK, each on a fresh
// Azurite of its own.
func runInTurn(ls linkSpec, bin, self, work, src string, w workload, i int) (result, result, error) {
	s, err := onFreshAzurite(ls, src, func(az *azurite.Server) (result, error) {
		fmt.Fprintf(os.Stderr, "%s run %d/%d: service... ", w.name, i+1, *flagRuns)
		return runService(az, bin, work, src, w, i, nil)
	})
	if err != nil {
		return s, result{}, fmt.Errorf("%s service: %w", w.name, err)
	}
	fmt.Fprintf(os.Stderr, "%.1f MB/s\n", s.mbps())
	r, err := onFreshAzurite(ls, src, func(az *azurite.Server) (result, error) {
		fmt.Fprintf(os.Stderr, "%s run %d/%d: raw SDK... ", w.name, i+1, *flagRuns)
		return runRaw(az, self, src, w, i)
	})
	if err != nil {
		return s, r, fmt.Errorf("%s raw: %w", w.name, err)
	}
	fmt.Fprintf(os.Stderr, "%.1f MB/s\n", r.mbps())
	return s, r, nil
}

// runService starts the service on fresh folders, hard-links the files into
// a session's incoming folder (producers finishing at once) and waits for
// every "file uploaded" log line. taken, when not nil, is called once the
// service has taken the first file.
func runService(az *azurite.Server, bin, work, src string, w workload, i int, taken func()) (result, error) {
	root, err := os.MkdirTemp(work, "svc-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(root)
	port, err := azurite.FreePort()
	if err != nil {
		return result{}, err
	}
	cont := container("svc", w, i)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"APP_AZURE_AUTH=connection-string",
		"APP_AZURE_CONNECTION_STRING=" + connString(az),
		"APP_AZURE_CONTAINER=" + cont,
		"APP_NFS_INCOMING_DIR=" + filepath.Join(root, "nfs", "incoming"),
		"APP_NFS_PROCESSING_ROOT=" + filepath.Join(root, "nfs", ".processing"),
		"APP_LOCAL_STAGING_ROOT=" + filepath.Join(root, "staging"),
		"APP_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(port),
		"APP_STAGING_MODE=" + *flagStaging,
		"APP_WORKER_CONCURRENCY=" + strconv.Itoa(*flagWorkers),
		"APP_POLL_INTERVAL_S=" + strconv.FormatFloat(*flagPoll, 'f', -1, 64),
		"APP_MIN_FILE_AGE_S=" + strconv.FormatFloat(*flagAge, 'f', -1, 64),
		"APP_MAX_QUEUE_SIZE=10000",
	}
	if *flagEnv != "" {
		env = append(env, strings.Split(*flagEnv, ",")...)
	}
	logPath := filepath.Join(root, "service.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return result{}, err
	}
	defer logf.Close()
	cmd := uploaderCmd(bin)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		t := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
		_ = cmd.Wait()
		t.Stop()
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitFor(30*time.Second, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		return result{}, fmt.Errorf("service not ready: %w", err)
	}
	resp, err := http.Post(base+"/v1/watch/start", "application/json", strings.NewReader(`{"session":"bench"}`))
	if err != nil {
		return result{}, err
	}
	resp.Body.Close()
	in := filepath.Join(root, "nfs", "incoming", "bench")
	ents, err := os.ReadDir(src)
	if err != nil {
		return result{}, err
	}
	cpu0, err := procstat.CPUSeconds(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	appeared := map[string]time.Time{}
	for _, e := range ents {
		if err := os.Link(filepath.Join(src, e.Name()), filepath.Join(in, e.Name())); err != nil {
			return result{}, err
		}
		appeared[e.Name()] = time.Now()
	}
	if taken != nil && len(ents) > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go watchTaken(filepath.Join(in, ents[0].Name()), stop, taken)
	}
	log := &logTail{path: logPath, done: map[string][2]time.Time{}}
	done := log.done
	timeout := 10*time.Minute + time.Duration(w.size*int64(w.files)/(20<<20))*time.Second
	if err := waitFor(timeout, func() bool {
		log.read()
		return len(done) >= w.files
	}); err != nil {
		return result{}, fmt.Errorf("%d of %d files uploaded: %w", len(done), w.files, err)
	}
	cpu1, err := procstat.CPUSeconds(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	peak, err := procstat.PeakRSS(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	r := result{Files: w.files, Bytes: w.size * int64(w.files), CPU: cpu1 - cpu0, PeakRSS: peak}
	var first, last time.Time
	for name, t := range done {
		r.Latencies = append(r.Latencies, t[0].Sub(appeared[name]).Seconds())
		if t[0].After(last) {
			last = t[0]
		}
		if first.IsZero() || t[1].Before(first) {
			first = t[1]
		}
	}
	r.Seconds = last.Sub(first).Seconds()
	return r, nil
}

// logTail reads the service log as it grows: file -> when its blob was
// committed and when the service had found it stable. Each poll parses
// only the new lines: re-reading the whole log would take the CPU Azurite
// runs on.
type logTail struct {
	path string
	t    tail
	done map[string][2]time.Time
}

func (l *logTail) read() {
	for _, line := range l.t.lines(l.path) {
		if !strings.Contains(line, `"file uploaded"`) {
			continue
		}
		var v struct {
			Time      time.Time `json:"time"`
			File      string    `json:"file"`
			LatencyMs int64     `json:"latency_ms"`
		}
		if json.Unmarshal([]byte(line), &v) == nil {
			l.done[v.File] = [2]time.Time{v.Time, v.Time.Add(-time.Duration(v.LatencyMs) * time.Millisecond)}
		}
	}
}

// tail follows one growing file: lines gives the lines ended since the
// last call, and keeps a line not yet ended for the next.
type tail struct {
	off  int64
	part string
}

func (t *tail) lines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return nil
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil
	}
	t.off += int64(len(b))
	lines := strings.Split(t.part+string(b), "\n")
	t.part = lines[len(lines)-1]
	return lines[:len(lines)-1]
}

// freshAzurite starts an in-memory Azurite, warms it up and puts the link
// in front of it when there is one.
func freshAzurite(ls linkSpec) (*azurite.Server, error) {
	az, err := azurite.Start()
	if err != nil {
		return nil, err
	}
	if err := warm(az); err != nil {
		az.Stop()
		return nil, err
	}
	if *flagLink != "" {
		if err := startLink(az, ls); err != nil {
			az.Stop()
			return nil, err
		}
	}
	return az, nil
}

// runAzCopy runs AzCopy on a fresh Azurite of its own, behind the same link.
func runAzCopy(azc *azCopy, ls linkSpec, work, src string, w workload, i int) (result, error) {
	return onFreshAzurite(ls, src, func(az *azurite.Server) (result, error) {
		// After Azurite's start-up lines, which go to stderr too.
		fmt.Fprintf(os.Stderr, "%s run %d/%d: AzCopy... ", w.name, i+1, *flagRuns)
		return azc.run(az, work, src, w, i)
	})
}

// onFreshAzurite runs one side on a fresh Azurite of its own (behind the
// link when there is one), with the workload's files in src cached, and
// adds the Azurite CPU the side cost.
func onFreshAzurite(ls linkSpec, src string, side func(*azurite.Server) (result, error)) (result, error) {
	az, err := freshAzurite(ls)
	if err != nil {
		return result{}, err
	}
	defer az.Stop()
	defer stopLink()
	if err := warmFiles(src); err != nil {
		return result{}, err
	}
	a0 := azuriteCPU(az)
	r, err := side(az)
	r.AzuriteCPU = azuriteCPU(az) - a0
	return r, err
}

// watchTaken calls taken, once, when path (the first file linked and so
// the first the service claims) has left the incoming folder.
func watchTaken(path string, stop <-chan struct{}, taken func()) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			taken()
			return
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// runTogether measures the service and the raw SDK at the same time, each
// with a fresh Azurite of its own: both uploaders share CPU 0, both
// Azurites the other CPUs. The raw side starts when the service takes its
// first file, so both upload through the same stretch of time, and a host
// whose speed drifts (see -host-speed) changes it for both.
func runTogether(bin, self, work, src string, w workload, i int) (svc, raw result, err error) {
	var azs [2]*azurite.Server
	for k := range azs {
		if azs[k], err = freshAzurite(linkSpec{}); err != nil {
			return svc, raw, err
		}
		defer azs[k].Stop()
	}
	if err := warmFiles(src); err != nil {
		return svc, raw, err
	}
	a0 := [2]float64{azuriteCPU(azs[0]), azuriteCPU(azs[1])}
	fmt.Fprintf(os.Stderr, "%s run %d/%d: service and raw SDK together... ", w.name, i+1, *flagRuns)
	taken := make(chan struct{})
	type outcome struct {
		r   result
		err error
	}
	svcDone := make(chan outcome, 1)
	go func() {
		r, err := runService(azs[0], bin, work, src, w, i, func() { close(taken) })
		svcDone <- outcome{r, err}
	}()
	select {
	case <-taken:
	case o := <-svcDone:
		return svc, raw, fmt.Errorf("%s service: ended before taking a file: %v", w.name, o.err)
	}
	raw, rerr := runRaw(azs[1], self, src, w, i)
	o := <-svcDone
	if o.err != nil {
		return svc, raw, fmt.Errorf("%s service: %w", w.name, o.err)
	}
	if rerr != nil {
		return svc, raw, fmt.Errorf("%s raw: %w", w.name, rerr)
	}
	svc = o.r
	svc.AzuriteCPU, raw.AzuriteCPU = azuriteCPU(azs[0])-a0[0], azuriteCPU(azs[1])-a0[1]
	fmt.Fprintf(os.Stderr, "service %.1f MB/s, raw SDK %.1f MB/s\n", svc.mbps(), raw.mbps())
	return svc, raw, nil
}

func runRaw(az *azurite.Server, self, src string, w workload, i int) (result, error) {
	cont := container("raw", w, i)
	cmd := uploaderCmd(self, "-raw", "-raw-crc64="+strconv.FormatBool(*flagRawCRC), "-raw-props="+strconv.FormatBool(*flagRawProps), "-raw-dir", src, "-raw-conn", connString(az), "-raw-container", cont,
		"-workers", strconv.Itoa(*flagWorkers))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, err
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return result{}, fmt.Errorf("raw output %q: %w", out, err)
	}
	return r, nil
}

// rawMain uploads every file of -raw-dir with azblob's UploadFile, the
// SDK's own file upload, -workers files at a time, with the same block
// size and concurrency the service uses by default.
func rawMain() error {
	ctx := context.Background()
	c, err := azblob.NewClientFromConnectionString(*flagRawConn, nil)
	if err != nil {
		return err
	}
	if _, err := c.CreateContainer(ctx, *flagRawCont, nil); err != nil {
		return err
	}
	ents, err := os.ReadDir(*flagRawDir)
	if err != nil {
		return err
	}
	// -raw-props: one date/session prefix for the run, as the service's session has.
	prefix := time.Now().UTC().Format("20060102") + "/bench/"
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	jobs := make(chan os.DirEntry)
	var mu sync.Mutex
	r := result{Files: len(ents)}
	var firstErr error
	var wg sync.WaitGroup
	for range *flagWorkers {
		wg.Go(func() {
			for e := range jobs {
				f, err := os.Open(filepath.Join(*flagRawDir, e.Name()))
				if err == nil {
					fi, _ := f.Stat()
					bs := max(4<<20, fi.Size()/blockblob.MaxBlocks+1)
					o := &blockblob.UploadFileOptions{BlockSize: bs, Concurrency: uint16(blob.DefaultConcurrency())}
					if *flagRawProps && fi.Size() <= 64<<10 {
						err = putWithProps(ctx, c.ServiceClient().NewContainerClient(*flagRawCont), prefix, f, fi)
					} else if *flagRawCRC && fi.Size() <= blockblob.MaxUploadBlobBytes {
						// One Put Blob: the SDK computes the CRC64, Azurite checks it.
						_, err = c.ServiceClient().NewContainerClient(*flagRawCont).NewBlockBlobClient(e.Name()).Upload(ctx, f,
							&blockblob.UploadOptions{TransactionalValidation: sdkblob.TransferValidationTypeComputeCRC64()})
					} else {
						_, err = c.ServiceClient().NewContainerClient(*flagRawCont).NewBlockBlobClient(e.Name()).UploadFile(ctx, f, o)
					}
					_ = bs
					f.Close()
					mu.Lock()
					r.Bytes += fi.Size()
					r.Latencies = append(r.Latencies, time.Since(start).Seconds())
					mu.Unlock()
				}
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, e := range ents {
		jobs <- e
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	r.Seconds = time.Since(start).Seconds()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	r.CPU = tv(ru1.Utime) + tv(ru1.Stime) - tv(ru0.Utime) - tv(ru0.Stime)
	r.PeakRSS = ru1.Maxrss << 10
	return json.NewEncoder(os.Stdout).Encode(r)
}

// putWithProps sends a small file as the service does, without its
// lifecycle: read into memory, its CRC64 on the Put Blob and in metadata,
// mtime and session metadata, Content-Type, the date/session prefix.
func putWithProps(ctx context.Context, cc *azcontainer.Client, prefix string, f *os.File, fi os.FileInfo) error {
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return err
	}
	crc := crc64nvme.Checksum(data)
	mtime, session, hexCRC := fi.ModTime().UTC().Format(blob.MtimeFormat), "bench", fmt.Sprintf("%016x", crc)
	ct := "application/octet-stream"
	_, err := cc.NewBlockBlobClient(prefix+fi.Name()).Upload(ctx, nopRSC{bytes.NewReader(data)},
		&blockblob.UploadOptions{
			HTTPHeaders:             &sdkblob.HTTPHeaders{BlobContentType: &ct},
			Metadata:                map[string]*string{"mtime": &mtime, "session": &session, blob.MetaCRC64: &hexCRC},
			TransactionalValidation: sdkblob.TransferValidationTypeCRC64(crc),
		})
	return err
}

func rawDesc() string {
	if *flagRawProps {
		return " (files up to 64 KiB sent as the service sends them: CRC64, metadata, Content-Type, prefix)"
	}
	if *flagRawCRC {
		return " (Put Blob with the SDK's CRC64 up to 256 MiB)"
	}
	return ""
}

func azuriteCPU(az *azurite.Server) float64 {
	s, _ := procstat.CPUSeconds(az.Pid())
	return s
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	return s[len(s)/2]
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

type summary struct{ filesPS, mbPS, cpuPerGB, rssMiB, p50, p99, azMsPerFile float64 }

func summarize(rs []result) summary {
	var fps, mbps, cpu, rss, p50, p99, az []float64
	for _, r := range rs {
		fps = append(fps, float64(r.Files)/r.Seconds)
		mbps = append(mbps, r.mbps())
		cpu = append(cpu, r.CPU/(float64(r.Bytes)/1e9))
		rss = append(rss, float64(r.PeakRSS)/(1<<20))
		p50 = append(p50, percentile(r.Latencies, 0.5))
		p99 = append(p99, percentile(r.Latencies, 0.99))
		az = append(az, r.AzuriteCPU*1000/float64(r.Files))
	}
	return summary{median(fps), median(mbps), median(cpu), median(rss), median(p50), median(p99), median(az)}
}

func tableRows(w workload, svc, raw, peer []result) []string {
	s, r := summarize(svc), summarize(raw)
	row := func(side string, x summary) string {
		return fmt.Sprintf("| %d × %s | %s | %.1f | %.1f | %.2f | %.0f | %.2f | %.2f | %.2f |", w.files, w.name, side,
			x.filesPS, x.mbPS, x.cpuPerGB, x.rssMiB, x.p50, x.p99, x.azMsPerFile)
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	rows := []string{
		row("service", s),
		row("raw SDK", r),
		fmt.Sprintf("| | ratio | %s | %s | %s | %s | %s | %s | %s |", ratio(s.filesPS, r.filesPS), ratio(s.mbPS, r.mbPS),
			ratio(s.cpuPerGB, r.cpuPerGB), ratio(s.rssMiB, r.rssMiB), ratio(s.p50, r.p50), ratio(s.p99, r.p99), ratio(s.azMsPerFile, r.azMsPerFile)),
	}
	if len(peer) > 0 {
		p := summarize(peer)
		rows = append(rows, row("AzCopy", p),
			fmt.Sprintf("| | ratio vs AzCopy | %s | %s | %s | %s | %s | %s | %s |", ratio(s.filesPS, p.filesPS), ratio(s.mbPS, p.mbPS),
				ratio(s.cpuPerGB, p.cpuPerGB), ratio(s.rssMiB, p.rssMiB), ratio(s.p50, p.p50), ratio(s.p99, p.p99), ratio(s.azMsPerFile, p.azMsPerFile)))
	}
	return rows
}
