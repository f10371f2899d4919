package nfsfault

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Each injected fault reaches the system call a service would make.
func TestFaultsReachSyscalls(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	back, mnt := t.TempDir(), t.TempDir()
	f, err := Mount(back, mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Unmount()
	d := filepath.Join(mnt, "d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "a"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.Fail(Readdir, "d", syscall.EIO, 1)
	if _, err := os.ReadDir(d); !errors.Is(err, syscall.EIO) {
		t.Fatalf("readdir: %v", err)
	}
	if _, err := os.ReadDir(d); err != nil {
		t.Fatalf("readdir after the fault: %v", err)
	}
	f.Fail(Rename, "a", syscall.ESTALE, 2)
	if err := os.Rename(filepath.Join(d, "a"), filepath.Join(d, "b")); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("rename: %v", err)
	}
	f.Fail(Read, "a", syscall.EIO, 1)
	if _, err := os.ReadFile(filepath.Join(d, "a")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(d, "a")); err != nil || string(b) != "hello" {
		t.Fatalf("read after the fault: %q %v", b, err)
	}
	f.Fail(Lookup, "zz", syscall.ESTALE, 2)
	if _, err := os.Lstat(filepath.Join(d, "zz")); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("lstat: %v", err)
	}
	f.Fail(Open, "a", syscall.EIO, 1)
	if _, err := os.Open(filepath.Join(d, "a")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("open: %v", err)
	}
	f.Fail(Getattr, "a", syscall.EIO, -1)
	if _, err := os.Stat(filepath.Join(d, "a")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("stat: %v", err)
	}
	f.Clear()
	if _, err := os.Stat(filepath.Join(d, "a")); err != nil {
		t.Fatalf("stat after Clear: %v", err)
	}
	if f.Hits(Rename) < 1 || f.Hits(Read) != 1 {
		t.Fatalf("hits: rename %d read %d", f.Hits(Rename), f.Hits(Read))
	}
}
