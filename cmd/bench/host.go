package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

var flagNoReporting = flag.Bool("no-page-reporting", false,
	"turn the VM's free page reporting off for the run and restore it after (root): see pageReporting")

// reportingOrder is the kernel's free page reporting knob. On a VM whose
// balloon device has the feature, freed memory of at least 2^order pages
// is handed back to the host; the next use of those pages then costs a
// hypervisor fault on first touch, charged to whichever process touches
// them. Every side allocates fresh memory at a different rate (the service
// writes staging copies into new page cache, Azurite grows its heap), so
// with reporting on CPU seconds measure the host's memory policy as much as
// the uploader. Orders above the kernel's largest (10) report nothing.
const reportingOrder = "/sys/module/page_reporting/parameters/page_reporting_order"

// pageReporting says whether free page reporting is on, and with
// -no-page-reporting turns it off until restore is called (or the bench is
// interrupted).
func pageReporting() (desc string, restore func(), err error) {
	restore = func() {}
	b, err := os.ReadFile(reportingOrder)
	if err != nil {
		return "free page reporting: not in this kernel", restore, nil
	}
	was := strings.TrimSpace(string(b))
	order, err := strconv.Atoi(was)
	if err != nil || order > 10 {
		return "free page reporting: off", restore, nil
	}
	if !*flagNoReporting {
		fmt.Fprintln(os.Stderr, "bench: free page reporting is on: freed memory goes back to the host and costs a fault when used again; -no-page-reporting (root) turns it off for the run")
		return fmt.Sprintf("free page reporting: on (order %d; large-file CPU figures include the host's faults)", order), restore, nil
	}
	if err := os.WriteFile(reportingOrder, []byte("11"), 0); err != nil {
		return "", restore, fmt.Errorf("-no-page-reporting: %w", err)
	}
	restore = func() { _ = os.WriteFile(reportingOrder, []byte(was), 0) }
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		restore()
		// Children the bench started die with it (Pdeathsig).
		os.Exit(128 + int(s.(syscall.Signal)))
	}()
	return fmt.Sprintf("free page reporting: off for the run (was order %d)", order), restore, nil
}

var flagTouch = flag.Int64("touch-memory", 0, "internal: fault in this many bytes of memory and exit")

// touchMemory has the host back n bytes of the VM's free memory again:
// pages reported before reporting was turned off still fault on first use,
// and without this the first run of a large workload pays for them (about
// 4× the raw SDK's CPU per GB in the first of five 256 MiB runs, 2.2–2.6×
// in the others). Freed again at once, the pages are what the kernel hands
// out next for page cache and for Azurite's heap. A child does it: a
// process's peak RSS passes to the children it starts, and the sides'
// figures would carry the bench's.
func touchMemory(self string, n int64) error {
	if !*flagNoReporting || n <= 0 {
		return nil
	}
	// Never so much that the kernel drops the workload's files from the
	// page cache or Azurite runs short.
	if avail := memAvailable(); avail > 0 {
		n = min(n, avail/2)
	}
	out, err := exec.Command(self, "-touch-memory", strconv.FormatInt(n, 10)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("touch memory: %w: %s", err, out)
	}
	return nil
}

func touchMain(n int64) error {
	m, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return err
	}
	return unix.Munmap(m)
}

// memAvailable is the kernel's estimate of memory free for new work, in
// bytes (0 when unknown).
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// warmFiles reads every file of dir, so that the side about to be measured
// finds them in the page cache as the side before it did. Some VMs page out
// file pages left unread for a while (this machine's DAMON evicts those
// idle for 60 s); the side measured first after such a gap otherwise reads
// from disk and pays for the I/O, which the other side does not.
func warmFiles(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
