package pipeline

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Sig is what says a file is unchanged: size, mtime, ctime and inode. ctime
// moves on any write or attribute change, even one that restores mtime;
// the inode tells a replaced file from the same file.
type Sig struct {
	Size  int64
	Mtime int64
	Ctime int64
	Ino   uint64
}

// SigOf reads the signature from a stat result.
func SigOf(fi os.FileInfo) Sig {
	s := Sig{Size: fi.Size(), Mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.Ctime = st.Ctim.Nano()
		s.Ino = st.Ino
	}
	return s
}

// SigOfStat reads the signature from a stat(2) result, as SigOf does from
// an os.FileInfo.
func SigOfStat(st *unix.Stat_t) Sig {
	return Sig{Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Ino: st.Ino}
}
