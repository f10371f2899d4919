// Package failure marks errors that retrying soon cannot fix (403, a
// missing container that cannot be created, an unreadable file): the
// pipeline retries those on its slow schedule and reports them at ERROR.
package failure

import (
	"errors"
	"fmt"
)

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() error   { return e.err }
func (e permanentError) Permanent() bool { return true }

// Permanent marks err permanent; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Permanentf is Permanent(fmt.Errorf(...)).
func Permanentf(format string, a ...any) error { return permanentError{fmt.Errorf(format, a...)} }

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}
