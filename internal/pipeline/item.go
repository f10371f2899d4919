// Package pipeline moves one file through its lifecycle: claim, stage,
// upload, verify, complete; plus start-up recovery and the GC of completed
// files. It knows nothing of Azure: the blob store is the Store interface.
package pipeline

import (
	"context"
	"path/filepath"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/object"
)

// Store is the blob service as the pipeline needs it.
type Store interface {
	// BlockSize is the block size Put uses for a file of size bytes; 0
	// means one request carries the whole file.
	BlockSize(size int64) int64
	// Put uploads o, replacing any older blob of its name. The service
	// refuses any request whose bytes differ from o.CRC64 or o.BlockCRC, so
	// a blob never holds bytes that were not read from the file. confirmed
	// means the answer itself proves the stored bytes.
	Put(ctx context.Context, o object.Object) (confirmed bool, err error)
	// Verify fails unless the stored blob has this size and CRC64.
	Verify(ctx context.Context, name string, size int64, crc uint64) error
}

// Layout names every folder of the lifecycle.
type Layout struct {
	Incoming   string // NFS: incoming/<session>/<name>
	Processing string // NFS: <processing>/<date>/<session>/<name>
	Staging    string // local: <staging>/<date>/<session>/<name>
}

// DoneDirName holds completed files inside a session's processing folder.
// Producer files starting with "." are never claimed, so a producer file can
// never be mistaken for a completion marker, whatever its name.
const DoneDirName = ".done"

// IncomingDir is where the producer writes a session's files.
func (l Layout) IncomingDir(session string) string { return filepath.Join(l.Incoming, session) }

// ProcessingDir holds a session's claimed files.
func (l Layout) ProcessingDir(date, session string) string {
	return filepath.Join(l.Processing, date, session)
}

// DoneDir holds a session's uploaded files until GC deletes them.
func (l Layout) DoneDir(date, session string) string {
	return filepath.Join(l.Processing, date, session, DoneDirName)
}

// StagingDir holds a session's local copies.
func (l Layout) StagingDir(date, session string) string {
	return filepath.Join(l.Staging, date, session)
}

// Child is the path of name inside the folder at rel, both below a
// session folder, with '/' separators as in blob names ("" is the session
// folder itself).
func Child(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// BlobName is <YYYYMMDD>/<session>/<name>.
func BlobName(date, session, name string) string { return date + "/" + session + "/" + name }

// Item is one file on its way through the pipeline.
type Item struct {
	Session string
	Date    string
	Name    string
	// Claimed is true once the file sits in .processing (after the claim,
	// or when found there by recovery).
	Claimed bool
	// Found is when the file was seen stable (or recovered): latency starts here.
	Found time.Time
	// Size is the size the watcher saw stable (0: unknown, as after
	// recovery): only what admission weighs the file by, never what is
	// uploaded.
	Size int64

	attempts     int
	firstFailure time.Time
	nextTry      time.Time
	// The size and CRC64 of the file when last read (read: ever): a file
	// that vanishes later counts as uploaded only if its blob has exactly
	// these.
	read     bool
	lastSize int64
	lastCRC  uint64
}

// Key identifies a file across its whole lifecycle.
func (it *Item) Key() string { return BlobName(it.Date, it.Session, it.Name) }

// fileID is Key's parts: a map key that needs no string built.
type fileID struct{ date, session, name string }

func (it *Item) id() fileID { return fileID{it.Date, it.Session, it.Name} }
