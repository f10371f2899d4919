package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/edge/nfs-watcher-uploader/internal/failure"
	"github.com/minio/crc64nvme"
	"golang.org/x/sys/unix"
)

var (
	// errVanished: the claimed file disappeared before its upload was confirmed.
	errVanished = errors.New("file vanished from .processing")
	// errTorn: the file changed while it was read; the copy is not used.
	errTorn = errors.New("file changed while it was being copied")
	// errChanged: the file changed after it was read (a writer still
	// appending through an open file); it is uploaded again.
	errChanged = errors.New("file changed after it was staged")
)

// noRoom says why a file cannot have a staging copy; it is then uploaded
// straight from .processing.
type noRoom struct{ reason string }

func (e *noRoom) Error() string { return e.reason }

// source is what gets uploaded: its bytes, size and checksums.
type source struct {
	r        io.ReaderAt
	size     int64
	crc64    uint64
	blockCRC []uint64
	sig      Sig      // the claimed file's signature when it was read
	inPlace  *os.File // set when uploading straight from .processing
	staging  string   // the staging file, if any
	done     func()   // frees the buffer, or deletes the staging file and its reservation
}

// Close releases what the source holds; a staging copy is deleted, so no
// path (success, failure, shutdown) leaves one behind.
func (s *source) Close() error {
	if s.done != nil {
		s.done()
		s.done = nil
	}
	return nil
}

// unchanged fails when a source read in place changed while it was
// uploaded. The block checksums already keep changed bytes out of the
// blob; this catches a change in size.
func (s *source) unchanged() error {
	if s.inPlace == nil {
		return nil // uploaded from a private copy
	}
	fi, err := s.inPlace.Stat()
	if err != nil {
		return err
	}
	if after := SigOf(fi); after != s.sig {
		return fmt.Errorf("%w during upload (size %d→%d)", errTorn, s.sig.Size, after.Size)
	}
	return nil
}

// maxTornCopies bounds how often a file that keeps changing is read again
// in one attempt before the attempt fails and is retried later.
const maxTornCopies = 3

// stage gives the bytes to upload: a private copy (in memory up to one
// buffer, else a staging file within the staging budget), or, in direct
// mode or when no copy fits, the claimed file itself. A copy torn by a
// late writer is made again.
func (p *Pipeline) stage(ctx context.Context, it *Item) (*source, error) {
	path := p.processingPath(it)
	direct := p.opts.StagingMode == "direct"
	var lastErr error
	for range maxTornCopies {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var src *source
		var err error
		if direct {
			src, err = p.readInPlace(path)
		} else {
			src, err = p.copyOnce(ctx, path)
			var nr *noRoom
			if errors.As(err, &nr) {
				direct = true
				p.stats.wentDirect(ctx, it, nr.reason)
				p.log.InfoContext(ctx, "uploading straight from processing", "session", it.Session, "file", it.Name,
					"step", "stage", "reason", nr.reason)
				src, err = p.readInPlace(path)
			}
		}
		if err == nil {
			it.lastSize, it.lastCRC, it.read = src.size, src.crc64, true
			return src, nil
		}
		if !errors.Is(err, errTorn) {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

func (p *Pipeline) processingPath(it *Item) string {
	return under(p.dirsOf(it).processing, it.Name)
}

func (p *Pipeline) stagingPath(path string) string {
	rel, err := filepath.Rel(p.opts.Layout.Processing, path)
	if err != nil {
		rel = filepath.Base(path)
	}
	return filepath.Join(p.opts.Layout.Staging, rel)
}

func (p *Pipeline) blockSize(size int64) int64 {
	if p.store == nil {
		return 0
	}
	return p.store.BlockSize(size)
}

// copyOnce makes one private copy of the claimed file.
func (p *Pipeline) copyOnce(ctx context.Context, path string) (*source, error) {
	fd, before, err := openSource(path)
	if err != nil {
		return nil, err
	}
	block := p.blockSize(before.Size)
	if before.Size <= copyBuf {
		defer closeFD(fd)
		return copyToMemory(fd, path, before, block)
	}
	in := os.NewFile(uintptr(fd), path)
	defer in.Close()
	if !p.budget.fits(before.Size) {
		return nil, &noRoom{fmt.Sprintf("file of %d bytes is larger than the staging budget (APP_LOCAL_STAGING_MAX_BYTES=%d)", before.Size, p.budget.max)}
	}
	// Waiting here holds no staging bytes, and every holder is a worker
	// busy with its upload, so room always comes.
	if err := p.budget.acquire(ctx, before.Size); err != nil {
		return nil, err
	}
	p.stats.stagingDelta(ctx, before.Size)
	free := func() {
		p.budget.release(before.Size)
		p.stats.stagingDelta(context.Background(), -before.Size)
	}
	if err := p.copying.Acquire(ctx, 1); err != nil {
		free()
		return nil, err
	}
	dst := p.stagingPath(path)
	src, err := copyHashed(in, before, path, dst, block)
	p.copying.Release(1)
	if err != nil {
		free()
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return nil, &noRoom{fmt.Sprintf("staging disk is full: %v", err)}
		}
		return nil, err
	}
	closeFile := src.done
	src.done = func() { closeFile(); free() }
	return src, nil
}

// unchangedSince fails unless the file at path still has the signature it
// had before n bytes of it were copied: otherwise the copy is torn.
func unchangedSince(path string, before Sig, n int64) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", errVanished, err)
	}
	if err != nil {
		return err
	}
	return torn(before, SigOf(fi), n, "copied")
}

// torn fails with errTorn unless a file of which n bytes were copied or
// read still has the signature it was opened with.
func torn(before, after Sig, n int64, verb string) error {
	if after == before && n == before.Size {
		return nil
	}
	return fmt.Errorf("%w (size %d→%d, %s %d)", errTorn, before.Size, after.Size, verb, n)
}

// openSource opens the claimed file as a bare descriptor and reads its
// signature. package os would first try to register it with the network
// poller, five system calls per file that a regular file does not use; a
// caller that streams a large file wraps the descriptor with os.NewFile.
func openSource(path string) (int, Sig, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		err = &os.PathError{Op: "open", Path: path, Err: err}
		switch {
		case errors.Is(err, os.ErrNotExist):
			return -1, Sig{}, fmt.Errorf("%w: %v", errVanished, err)
		case errors.Is(err, os.ErrPermission):
			// An operator has to fix ownership or the export's options.
			return -1, Sig{}, failure.Permanentf("cannot read %s: %v", path, err)
		}
		return -1, Sig{}, err
	}
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		closeFD(fd)
		return -1, Sig{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		closeFD(fd)
		return -1, Sig{}, failure.Permanentf("%s is not a regular file", path)
	}
	return fd, SigOfStat(&st), nil
}

func fstat(fd int, st *unix.Stat_t) error {
	return ignoringEINTR(func() error { return unix.Fstat(fd, st) })
}

// closeFD closes a descriptor only read from: its close has nothing to report.
func closeFD(fd int) { _ = unix.Close(fd) }

const (
	copyBuf  = 1 << 20
	smallBuf = 64 << 10
)

// buffers are reused: a fresh 1 MiB per file costs more than copying a
// small file does. Files up to 64 KiB (most of a backlog of small files)
// take a small one, so many workers hold little memory.
var (
	buffers      = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}
	smallBuffers = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
)

// bufferFor gives a pooled buffer that holds size bytes (size ≤ copyBuf)
// and the pool to return it to.
func bufferFor(size int64) (*[]byte, *sync.Pool) {
	pool := &buffers
	if size <= smallBuf {
		pool = &smallBuffers
	}
	return pool.Get().(*[]byte), pool
}

// copyAll copies through a buffer of pool: 1 MiB ones for staging copies,
// 64 KiB ones (which stay in the CPU's cache) for hashing in place.
func copyAll(pool *sync.Pool, dst io.Writer, src io.Reader) (int64, error) {
	buf := pool.Get().(*[]byte)
	defer pool.Put(buf)
	return io.CopyBuffer(dst, onlyReader{src}, *buf)
}

// sums computes, in one pass, the CRC-64/NVME of the whole file and of
// each block: the checksums Azure verifies on every request. They replace
// an MD5 of our own: the PCLMUL/PMULL code runs at over 10 GB/s where MD5
// takes about 2 s of CPU per GB, and the service stores the MD5 it computes
// itself on every single Put Blob.
type sums struct {
	whole   uint64
	block   int64
	crc     uint64
	inBlock int64
	crcs    []uint64
}

func newSums(block int64) *sums { return &sums{block: block} }

func (s *sums) Write(b []byte) (int, error) {
	n := len(b)
	s.whole = crc64nvme.Update(s.whole, b)
	for s.block > 0 && len(b) > 0 {
		k := min(int64(len(b)), s.block-s.inBlock)
		s.crc = crc64nvme.Update(s.crc, b[:k])
		s.inBlock += k
		b = b[k:]
		if s.inBlock == s.block {
			s.crcs = append(s.crcs, s.crc)
			s.crc, s.inBlock = 0, 0
		}
	}
	return n, nil
}

func (s *sums) finish() (uint64, []uint64) {
	if s.inBlock > 0 {
		s.crcs = append(s.crcs, s.crc)
		s.crc, s.inBlock = 0, 0
	}
	return s.whole, s.crcs
}

// copyHashed copies in (opened with before) to dstPath, hashing it. It
// never writes more than before.Size bytes: the staging reservation.
func copyHashed(in *os.File, before Sig, srcPath, dstPath string, block int64) (*source, error) {
	if err := os.MkdirAll(filepath.Dir(dstPath), 0o755); err != nil {
		return nil, fmt.Errorf("create staging folder: %w", err)
	}
	out, err := os.OpenFile(dstPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if errors.Is(err, os.ErrNotExist) {
		// The GC removed the folder as it emptied; make it again once.
		if err = os.MkdirAll(filepath.Dir(dstPath), 0o755); err == nil {
			out, err = os.OpenFile(dstPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create staging copy: %w", err)
	}
	discard := func() { out.Close(); os.Remove(dstPath) }
	h := newSums(block)
	n, err := copyAll(&buffers, io.MultiWriter(out, h), io.LimitReader(in, before.Size))
	if err != nil {
		discard()
		return nil, fmt.Errorf("copy to staging: %w", err)
	}
	// No fsync: the copy is read back through this same descriptor, and
	// after a crash recovery copies again from .processing, which keeps the
	// file until its blob is confirmed. A flush would buy nothing and costs
	// a disk round trip per file (see the README's Performance figures).
	if err := unchangedSince(srcPath, before, n); err != nil {
		discard()
		return nil, err
	}
	sum, crcs := h.finish()
	return &source{r: out, size: n, crc64: sum, blockCRC: crcs, sig: before, staging: dstPath, done: discard}, nil
}

// copyToMemory stages a file of at most one buffer in memory: the same
// private, stable copy as a staging file, without creating, writing and
// deleting a file per upload (most of the cost of a small file).
func copyToMemory(fd int, path string, before Sig, block int64) (*source, error) {
	buf, pool := bufferFor(before.Size)
	// Exactly the size seen: one read for a small file, and bytes
	// appended since show in the size after.
	n, err := readFull(fd, (*buf)[:before.Size])
	if err != nil {
		pool.Put(buf)
		return nil, fmt.Errorf("copy to staging: %w", &os.PathError{Op: "read", Path: path, Err: err})
	}
	// The descriptor's inode is the file that was read: a write to it since
	// shows here. A file put in its place later is completion's to find.
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		pool.Put(buf)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := torn(before, SigOfStat(&st), int64(n), "copied"); err != nil {
		pool.Put(buf)
		return nil, err
	}
	h := newSums(block)
	h.Write((*buf)[:n])
	sum, crcs := h.finish()
	// A request given up mid-body may still be read after Close hands the
	// buffer on; its checksums make the service refuse such bytes.
	return &source{
		r:    bytes.NewReader((*buf)[:n]),
		size: int64(n), crc64: sum, blockCRC: crcs, sig: before,
		done: func() { pool.Put(buf) },
	}, nil
}

// readInPlace hashes the claimed file where it is, for uploading from it.
// A file of at most one small buffer is read into memory instead, as in
// copy mode: one read instead of two. Larger files are hashed through a
// small buffer that stays in the CPU's cache: reading a file twice that way
// costs less than reading it once into a buffer of its size and sending
// from there.
func (p *Pipeline) readInPlace(path string) (*source, error) {
	fd, before, err := openSource(path)
	if err != nil {
		return nil, err
	}
	if before.Size <= smallBuf {
		defer closeFD(fd)
		return copyToMemory(fd, path, before, p.blockSize(before.Size))
	}
	f := os.NewFile(uintptr(fd), path)
	h := newSums(p.blockSize(before.Size))
	n, err := copyAll(&smallBuffers, h, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := torn(before, SigOf(fi), n, "read"); err != nil {
		f.Close()
		return nil, err
	}
	sum, crcs := h.finish()
	return &source{r: f, size: n, crc64: sum, blockCRC: crcs, sig: before, inPlace: f, done: func() { f.Close() }}, nil
}

// readFull reads into b until it is full or the file ends.
func readFull(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		var k int
		err := ignoringEINTR(func() (err error) {
			k, err = unix.Read(fd, b[n:])
			return err
		})
		if err != nil {
			return n, err
		}
		if k == 0 {
			break
		}
		n += k
	}
	return n, nil
}

// onlyReader hides WriterTo/ReaderFrom so io.CopyBuffer uses our buffer size.
type onlyReader struct{ io.Reader }
