// Package pipeline moves one file through its lifecycle: claim, stage,
// upload, verify, complete; plus start-up recovery and the GC of completed
// files. It knows nothing of Azure: the blob store is the Store interface.
package pipeline

import (
	"context"
	"io"
	"path/filepath"
	"time"
)

// Store is the blob service as the pipeline needs it.
type Store interface {
	// Put uploads size bytes of src under name, replacing any older blob;
	// confirmed means the service proved the stored bytes have md5sum.
	Put(ctx context.Context, name string, src io.ReaderAt, size int64, md5sum []byte) (confirmed bool, err error)
	// Verify fails unless the stored blob has this size and MD5.
	Verify(ctx context.Context, name string, size int64, md5sum []byte) error
	// Exists reports whether a blob of that name is stored.
	Exists(ctx context.Context, name string) (bool, error)
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

	attempts     int
	firstFailure time.Time
	lastErr      string
	permanent    bool
	nextTry      time.Time
	state        string
}

// Key identifies a file across its whole lifecycle.
func (it *Item) Key() string { return BlobName(it.Date, it.Session, it.Name) }
