// Package session holds session names and the persisted active session.
package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/atomicfile"
	"github.com/google/uuid"
)

// MaxNameLen is the longest accepted session name.
const MaxNameLen = 63

// ValidateName accepts 1-63 characters of [A-Za-z0-9_.-], not starting with
// a dot: "." and ".." would escape incoming/, and dot names are hidden folders.
func ValidateName(name string) error {
	if name == "" {
		return errors.New("session name must not be empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("session name is %d characters long; at most %d are allowed", len(name), MaxNameLen)
	}
	if name[0] == '.' {
		return errors.New("session name must not start with '.'")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return fmt.Errorf("session name may hold only letters, digits, '_', '.' and '-' (found %q at byte %d)", c, i)
		}
	}
	return nil
}

// Generate returns a fresh name "00-session-<UUIDv7>".
func Generate() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	return "00-session-" + id.String(), nil
}

// DatePrefix is the UTC date of t as YYYYMMDD.
func DatePrefix(t time.Time) string { return t.UTC().Format("20060102") }

// State is what is persisted about the session of one processing root.
type State struct {
	Session    string    `json:"session"`
	DatePrefix string    `json:"date_prefix"`
	Active     bool      `json:"active"`
	Started    time.Time `json:"started"`
}

// stateFile lives in the processing root: it is owned by the same pod as
// the files it describes, and survives restarts like they do.
const stateFile = ".session.json"

// Load reads the persisted state; a missing file is the zero State.
func Load(processingRoot string) (State, error) {
	var s State
	b, err := os.ReadFile(filepath.Join(processingRoot, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("parse %s: %w", stateFile, err)
	}
	if s.Active {
		if err := ValidateName(s.Session); err != nil {
			return State{}, fmt.Errorf("%s: %w", stateFile, err)
		}
		if _, err := time.Parse("20060102", s.DatePrefix); err != nil {
			return State{}, fmt.Errorf("%s: bad date_prefix %q", stateFile, s.DatePrefix)
		}
	}
	return s, nil
}

// Save writes the state atomically (temp file, fsync, rename) so a kill
// mid-write leaves either the old or the new state, never half of one.
func Save(processingRoot string, s State) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return atomicfile.Write(processingRoot, stateFile, b)
}
