package pipeline

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// errVanished: the claimed file disappeared before its upload was confirmed.
var errVanished = errors.New("file vanished from .processing")

// source is what gets uploaded: its bytes, size and MD5.
type source struct {
	r       io.ReaderAt
	close   func() error
	size    int64
	md5     []byte
	staging string   // local copy to delete after completion, if any
	inPlace *os.File // direct mode: the claimed file itself
	sig     fileSig  // inPlace's size and mtime when hashed
}

// unchanged fails when a source read in place (direct mode) changed while
// it was uploaded: the blob may then mix old and new bytes under the old MD5.
func (s *source) unchanged() error {
	if s.inPlace == nil {
		return nil // uploaded from a private copy
	}
	fi, err := s.inPlace.Stat()
	if err != nil {
		return err
	}
	if after := sigOf(fi); after != s.sig {
		return fmt.Errorf("%w during upload (size %d→%d)", errTorn, s.sig.size, after.size)
	}
	return nil
}

func (s *source) Close() error { return s.close() }

// maxTornCopies bounds how often a file that keeps changing is copied again
// in one attempt before the attempt fails and is retried later.
const maxTornCopies = 3

// stage copies the claimed file to local staging (in memory up to one
// buffer, else a staging file), hashing it on the way. If the file changed
// while being copied (size or mtime differs between before and after), the
// copy is torn and is made again.
func (p *Pipeline) stage(ctx context.Context, it *Item) (*source, error) {
	srcPath := filepath.Join(p.opts.Layout.ProcessingDir(it.Date, it.Session), it.Name)
	if p.opts.StagingMode == "direct" {
		return p.stageDirect(srcPath)
	}
	var lastErr error
	for range maxTornCopies {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		src, err := p.copyOnce(it, srcPath)
		if !errors.Is(err, errTorn) {
			return src, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// copyOnce makes one private copy of the claimed file: in memory up to one
// buffer, else in the local staging folder.
func (p *Pipeline) copyOnce(it *Item, srcPath string) (*source, error) {
	in, before, err := openSource(srcPath)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	if before.size <= copyBuf {
		return copyToMemory(in, before, srcPath)
	}
	dir := p.opts.Layout.StagingDir(it.Date, it.Session)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create staging folder: %w", err)
	}
	return copyHashed(in, before, srcPath, filepath.Join(dir, it.Name))
}

// unchangedSince fails unless the file at path still has the size and mtime
// it had before n bytes of it were copied: otherwise the copy is torn.
func unchangedSince(path string, before fileSig, n int64) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", errVanished, err)
	}
	if err != nil {
		return err
	}
	if after := sigOf(fi); after != before || n != before.size {
		return fmt.Errorf("%w (size %d→%d, copied %d)", errTorn, before.size, after.size, n)
	}
	return nil
}

var errTorn = errors.New("file changed while it was being copied")

type fileSig struct {
	size  int64
	mtime time.Time
}

func sigOf(fi os.FileInfo) fileSig { return fileSig{fi.Size(), fi.ModTime()} }

func openSource(path string) (*os.File, fileSig, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fileSig{}, fmt.Errorf("%w: %v", errVanished, err)
	}
	if errors.Is(err, os.ErrPermission) {
		// An operator has to fix ownership or the export's options.
		return nil, fileSig{}, permanentf("cannot read %s: %v", path, err)
	}
	if err != nil {
		return nil, fileSig{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileSig{}, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fileSig{}, permanentf("%s is not a regular file", path)
	}
	return f, sigOf(fi), nil
}

const copyBuf = 1 << 20

// buffers are reused: a fresh 1 MiB per file costs more than copying a
// small file does.
var buffers = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

func copyAll(dst io.Writer, src io.Reader) (int64, error) {
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	return io.CopyBuffer(dst, onlyReader{src}, *buf)
}

// copyHashed copies in (opened with before) to dstPath, hashing it.
func copyHashed(in *os.File, before fileSig, srcPath, dstPath string) (*source, error) {
	out, err := os.OpenFile(dstPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create staging copy: %w", err)
	}
	h := md5.New()
	n, err := copyAll(io.MultiWriter(out, h), in)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("copy to staging: %w", err)
	}
	// No fsync: the copy is read back through this same descriptor, and
	// after a crash recovery copies again from .processing, which keeps the
	// file until its blob is confirmed. A flush would buy nothing and costs
	// a disk round trip per file (see the README's Performance figures).
	if err := unchangedSince(srcPath, before, n); err != nil {
		out.Close()
		return nil, err
	}
	return &source{r: out, close: out.Close, size: n, md5: h.Sum(nil), staging: dstPath}, nil
}

// copyToMemory stages a file of at most one buffer in memory: the same
// private, stable copy as a staging file, without creating, writing and
// deleting a file per upload (most of the cost of a small file).
func copyToMemory(in *os.File, before fileSig, srcPath string) (*source, error) {
	buf := buffers.Get().(*[]byte)
	n, err := io.ReadFull(in, *buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		buffers.Put(buf)
		return nil, fmt.Errorf("copy to staging: %w", err)
	}
	if err := unchangedSince(srcPath, before, int64(n)); err != nil {
		buffers.Put(buf)
		return nil, err
	}
	sum := md5.Sum((*buf)[:n])
	// A request given up mid-body may still be read after Close hands the
	// buffer on; its Content-MD5 makes the service refuse such bytes.
	return &source{
		r:     bytes.NewReader((*buf)[:n]),
		close: func() error { buffers.Put(buf); return nil },
		size:  int64(n), md5: sum[:],
	}, nil
}

// stageDirect hashes the claimed file in place and uploads from it.
func (p *Pipeline) stageDirect(srcPath string) (*source, error) {
	for range maxTornCopies {
		f, before, err := openSource(srcPath)
		if err != nil {
			return nil, err
		}
		h := md5.New()
		n, err := copyAll(h, f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if sigOf(fi) == before && n == before.size {
			return &source{r: f, close: f.Close, size: n, md5: h.Sum(nil), inPlace: f, sig: before}, nil
		}
		f.Close()
	}
	return nil, errTorn
}

// onlyReader hides WriterTo/ReaderFrom so io.CopyBuffer uses our buffer size.
type onlyReader struct{ io.Reader }

type permanentError struct{ msg string }

func (e permanentError) Error() string   { return e.msg }
func (e permanentError) Permanent() bool { return true }

func permanentf(format string, a ...any) error { return permanentError{fmt.Sprintf(format, a...)} }
