package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
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
