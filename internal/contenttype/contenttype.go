// Package contenttype gives a blob's Content-Type from its name's extension,
// from a table compiled into the binary: Go's mime.TypeByExtension reads the
// host's /etc/mime.types and friends, so it answers differently in the
// distroless image than on a developer machine.
package contenttype

//go:generate node ../../scripts/gen-contenttypes.mjs table.go
//go:generate gofmt -w table.go

import (
	"path"
	"strings"
)

// Default is the type of a name whose extension is unknown, or that has none.
const Default = "application/octet-stream"

// extra holds registered types that the generated table does not know yet.
var extra = map[string]string{
	// IANA registered it in 2024; mime-db 1.54.0 has no entry.
	".parquet": "application/vnd.apache.parquet",
}

// ForName returns the media type for name's extension, matched without
// regard to case, or Default.
func ForName(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := extra[ext]; ok {
		return t
	}
	if t, ok := table[ext]; ok {
		return t
	}
	return Default
}
