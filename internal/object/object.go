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
	// CRC64 is the CRC-64/NVME of the whole file (Azure's x-ms-content-crc64)
	// and BlockCRC each block's (as the store's BlockSize cuts them), all
	// computed in the one pass that read the file.
	CRC64    uint64
	BlockCRC []uint64
	Session  string
	Date     string    // YYYYMMDD
	Mtime    time.Time // the source file's modification time
}
