// Package object describes one file as it is uploaded: what the pipeline
// hands the blob store. It is its own package so that the pipeline needs
// nothing of Azure and the blob store nothing of the pipeline.
package object

import (
	"io"
	"time"
)

// Object is one file to upload under Name.
type Object struct {
	Name string      // blob name: <YYYYMMDD>/<session>/<relative path>
	Src  io.ReaderAt // its bytes
	Size int64
	MD5  []byte
	// BlockCRC holds each block's CRC64 (as the store's BlockSize cuts
	// them), computed in the same pass as MD5.
	BlockCRC []uint64
	Session  string
	Date     string    // YYYYMMDD
	Mtime    time.Time // the source file's modification time
}
