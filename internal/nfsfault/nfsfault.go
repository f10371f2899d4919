// Package nfsfault mounts a FUSE loopback filesystem that behaves like a
// misbehaving NFS export for tests: chosen operations on chosen names fail
// with ESTALE or EIO, or hang until released.
package nfsfault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Op names a filesystem operation faults can be injected into.
type Op string

// The operations that can fail or hang.
const (
	Lookup  Op = "lookup"  // path resolution, os.Lstat of a new name
	Getattr Op = "getattr" // stat of a known inode
	Readdir Op = "readdir" // opening a folder for listing
	Rename  Op = "rename"  // rename(2), the claim and the completion
	Open    Op = "open"    // opening a file
	Read    Op = "read"    // reading file contents
	Unlink  Op = "unlink"  // deleting a file (GC)
)

// Available says why FUSE cannot be used here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("FUSE fault injection needs root (mounts without fusermount)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("FUSE fault injection needs /dev/fuse: %v", err)
	}
	return nil
}

type rule struct {
	op    Op
	name  string // base name the op is on; "" for any
	errno syscall.Errno
	left  int // faults left; <0 forever
	hang  chan struct{}
}

// FS is a mounted fault-injecting loopback.
type FS struct {
	Dir     string // the mount point: use it as the NFS folder
	backing string
	server  *fuse.Server

	mu    sync.Mutex
	rules []*rule
	hits  map[Op]int // faults delivered (errors returned or calls hung)
	hung  int        // calls hanging right now
}

// Mount serves backing at mountpoint (both must exist).
func Mount(backing, mountpoint string) (*FS, error) {
	f := &FS{Dir: mountpoint, backing: backing, hits: map[Op]int{}}
	lr, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, err
	}
	ln := lr.(*fs.LoopbackNode)
	root := &node{LoopbackNode: ln, f: f}
	ln.RootData.RootNode = root
	zero := time.Duration(0)
	srv, err := fs.Mount(mountpoint, root, &fs.Options{
		// No caching: every call reaches the daemon, so a fault is seen at once.
		EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{DirectMountStrict: true, FsName: "nfsfault", Name: "nfsfault"},
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	f.server = srv
	return f, nil
}

// Fail makes the next n calls of op on name fail with errno (n < 0: until
// Clear). The kernel retries some ops once on ESTALE: give n >= 2 to be seen.
func (f *FS) Fail(op Op, name string, errno syscall.Errno, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &rule{op: op, name: name, errno: errno, left: n})
}

// Hang holds every call of op on name until the returned release is called.
func (f *FS) Hang(op Op, name string) (release func()) {
	r := &rule{op: op, name: name, left: -1, hang: make(chan struct{})}
	f.mu.Lock()
	f.rules = append(f.rules, r)
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.remove(r)
			f.mu.Unlock()
			close(r.hang)
		})
	}
}

// Clear removes every error rule (hangs stay until released).
func (f *FS) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.rules[:0]
	for _, r := range f.rules {
		if r.hang != nil {
			kept = append(kept, r)
		}
	}
	f.rules = kept
}

// Hits reports how many faults op has delivered.
func (f *FS) Hits(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[op]
}

// Hung reports how many calls are held right now.
func (f *FS) Hung() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hung
}

// Unmount releases every hang and unmounts.
func (f *FS) Unmount() error {
	f.mu.Lock()
	var hangs []*rule
	for _, r := range f.rules {
		if r.hang != nil {
			hangs = append(hangs, r)
		}
	}
	f.rules = nil
	f.mu.Unlock()
	for _, r := range hangs {
		close(r.hang)
	}
	return f.server.Unmount()
}

func (f *FS) remove(r *rule) {
	for i, x := range f.rules {
		if x == r {
			f.rules = append(f.rules[:i], f.rules[i+1:]...)
			return
		}
	}
}

// fault applies the first matching rule: it hangs, or returns an errno.
func (f *FS) fault(ctx context.Context, op Op, name string) syscall.Errno {
	f.mu.Lock()
	var hit *rule
	for _, r := range f.rules {
		if r.op == op && (r.name == "" || r.name == name) {
			hit = r
			break
		}
	}
	if hit == nil {
		f.mu.Unlock()
		return 0
	}
	f.hits[op]++
	if hit.hang != nil {
		f.hung++
		f.mu.Unlock()
		select {
		case <-hit.hang:
		case <-ctx.Done():
		}
		f.mu.Lock()
		f.hung--
		f.mu.Unlock()
		return 0
	}
	if hit.left > 0 {
		hit.left--
		if hit.left == 0 {
			f.remove(hit)
		}
	}
	f.mu.Unlock()
	return hit.errno
}

// node is a loopback node that consults the rules first.
type node struct {
	*fs.LoopbackNode
	f *FS
}

var (
	_ fs.NodeWrapChilder     = (*node)(nil)
	_ fs.NodeLookuper        = (*node)(nil)
	_ fs.NodeGetattrer       = (*node)(nil)
	_ fs.NodeOpendirHandler  = (*node)(nil)
	_ fs.NodeRenamer         = (*node)(nil)
	_ fs.NodeOpener          = (*node)(nil)
	_ fs.NodeUnlinker        = (*node)(nil)
	_ fs.FilePassthroughFder = (*file)(nil)
	_ fs.FileReader          = (*file)(nil)
)

func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), f: n.f}
}

func (n *node) name() string { return filepath.Base(n.Path(nil)) }

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.f.fault(ctx, Lookup, name); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Lookup(ctx, name, out)
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if e := n.f.fault(ctx, Getattr, n.name()); e != 0 {
		return e
	}
	return n.LoopbackNode.Getattr(ctx, fh, out)
}

func (n *node) Statx(ctx context.Context, fh fs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if e := n.f.fault(ctx, Getattr, n.name()); e != 0 {
		return e
	}
	return n.LoopbackNode.Statx(ctx, fh, flags, mask, out)
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if e := n.f.fault(ctx, Readdir, n.name()); e != 0 {
		return nil, 0, e
	}
	return n.LoopbackNode.OpendirHandle(ctx, flags)
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if e := n.f.fault(ctx, Rename, name); e != 0 {
		return e
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if e := n.f.fault(ctx, Unlink, name); e != 0 {
		return e
	}
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if e := n.f.fault(ctx, Open, n.name()); e != 0 {
		return nil, 0, e
	}
	fh, fl, e := n.LoopbackNode.Open(ctx, flags)
	if e != 0 {
		return fh, fl, e
	}
	// Direct I/O: no page cache either, so every read reaches the rules.
	return &file{LoopbackFile: fh.(*fs.LoopbackFile), n: n}, fl | fuse.FOPEN_DIRECT_IO, 0
}

// file routes reads through the daemon (no kernel passthrough), so read
// faults can be injected.
type file struct {
	*fs.LoopbackFile
	n *node
}

func (f *file) PassthroughFd() (int, bool) { return -1, false }

func (f *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if e := f.n.f.fault(ctx, Read, f.n.name()); e != 0 {
		return nil, e
	}
	return f.LoopbackFile.Read(ctx, buf, off)
}
