package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

var flagPin = flag.Bool("pin", true,
	"run the uploading side alone on CPU 0, and Azurite, the link and this process on the others (needs taskset and 2+ CPUs)")

// pinned is true once this process (and so every Azurite it starts) keeps
// off CPU 0, which uploaderCmd gives to the side being measured. On a small
// machine the sides otherwise share cores with Azurite, whose load differs
// by side (it checks CRC64s only for the service), and CPU seconds per GB
// then measure that contention as much as the uploader.
var pinned bool

func pinSelf() (string, error) {
	if !*flagPin {
		return "not pinned (-pin=false)", nil
	}
	if runtime.NumCPU() < 2 {
		return "not pinned: one CPU", nil
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return "not pinned: no taskset", nil
	}
	var others unix.CPUSet
	for c := 1; c < runtime.NumCPU(); c++ {
		others.Set(c)
	}
	// Every thread: one set on a thread covers the threads it starts later.
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(os.Getpid()), "task"))
	if err != nil {
		return "", err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &others); err != nil {
			return "", fmt.Errorf("pin thread %d: %w", tid, err)
		}
	}
	pinned = true
	if *flagTogether {
		return fmt.Sprintf("both uploading sides on CPU 0; both Azurites and the bench on CPUs 1-%d", runtime.NumCPU()-1), nil
	}
	return fmt.Sprintf("uploading side alone on CPU 0; Azurite, the link and the bench on CPUs 1-%d", runtime.NumCPU()-1), nil
}

// uploaderCmd runs a side being measured, on CPU 0 when pinned. taskset
// execs the program, so the PID (and its CPU accounting) is the program's.
func uploaderCmd(name string, args ...string) *exec.Cmd {
	if !pinned {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", "0", name}, args...)...)
}
