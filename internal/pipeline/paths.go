package pipeline

import (
	"path/filepath"
	"strings"
)

// sessionDirs are one session's folders, joined once.
type sessionDirs struct {
	date, session              string
	incoming, processing, done string
}

// dirsOf returns the folders of the item's session. Files come one session
// at a time, so the last session's are kept instead of joining (and
// cleaning) the roots with its date and name for every file and step.
func (p *Pipeline) dirsOf(it *Item) *sessionDirs {
	if d := p.dirs.Load(); d != nil && d.date == it.Date && d.session == it.Session {
		return d
	}
	l := p.opts.Layout
	d := &sessionDirs{
		date: it.Date, session: it.Session,
		incoming:   l.IncomingDir(it.Session),
		processing: l.ProcessingDir(it.Date, it.Session),
		done:       l.DoneDir(it.Date, it.Session),
	}
	p.dirs.Store(d)
	return d
}

// under is filepath.Join(dir, name) for a dir that is already clean (as
// Layout's folders are). A name that is clean too, as the watcher and
// recovery make them, is appended without cleaning the whole path again.
func under(dir, name string) string {
	if dir == "" || dir == "." || dir == "/" || !cleanRel(name) {
		return filepath.Join(dir, name)
	}
	return dir + "/" + name
}

// cleanRel reports whether name is a relative path that filepath.Clean
// leaves as it is and that has no "." or ".." element.
func cleanRel(name string) bool {
	if name == "" || name[0] == '/' {
		return false
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
