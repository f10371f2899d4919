package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var flagHostSpeed = flag.Duration("host-speed", 0,
	"only measure how this machine's speed drifts: the same small piece of work on CPU 0, timed in CPU time every second for this long")

// hostSpeed times one fixed mix of what an uploader does (a 64 KiB copy, a
// system call, a 512-byte file read, a small allocation) on CPU 0, once a
// second, in CPU time. On a machine of steady speed every second gives the
// same figure; a host that lends its cores to others does not, and then
// two sides measured one after the other run on different machines.
func hostSpeed(d time.Duration) error {
	runtime.LockOSThread()
	var one unix.CPUSet
	one.Set(0)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return err
	}
	f, err := os.Open("/proc/self/stat")
	if err != nil {
		return err
	}
	defer f.Close()
	src, dst := make([]byte, 64<<10), make([]byte, 64<<10)
	var sink []byte
	var figures []float64
	for end := time.Now().Add(d); time.Now().Before(end); {
		c0, n := threadCPU(), 0
		for t := time.Now().Add(time.Second); time.Now().Before(t); n += 100 {
			for range 100 {
				copy(dst, src)
				unix.Getppid()
				if _, err := f.ReadAt(dst[:512], 0); err != nil && err != io.EOF {
					return err
				}
				sink = make([]byte, 256)
			}
		}
		ns := (threadCPU() - c0) * 1e9 / float64(n)
		figures = append(figures, ns)
		fmt.Printf("%3d s: %.0f ns of CPU per round\n", len(figures), ns)
	}
	_ = sink
	slices.Sort(figures)
	fmt.Printf("\n%d seconds: min %.0f, median %.0f, max %.0f ns per round (max/min %.2f)\n", len(figures),
		figures[0], median(figures), figures[len(figures)-1], figures[len(figures)-1]/figures[0])
	return nil
}

func threadCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(unix.RUSAGE_THREAD, &ru)
	return tv(ru.Utime) + tv(ru.Stime)
}
