// Package atomicfile writes small state files on NFS so that a kill or a
// crash mid-write leaves the old content or the new, never half of one.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Temp writes data to a fresh temp file in dir (named pattern, as for
// os.CreateTemp), flushed to the server, and returns its path; the caller
// renames or links it into place.
func Temp(dir, pattern string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	_ = f.Sync()
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// Write replaces dir/name with data: temp file, fsync, rename.
func Write(dir, name string, data []byte) error {
	tmp, err := Temp(dir, name+".tmp-*", data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
