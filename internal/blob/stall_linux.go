package blob

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// connBytes is the number of bytes the peer has acknowledged plus those
// received on c's TCP socket; ok is false when c is not a TCP socket.
func connBytes(c net.Conn) (n uint64, ok bool) {
	for {
		inner, wraps := c.(interface{ NetConn() net.Conn }) // *tls.Conn
		if !wraps {
			break
		}
		c = inner.NetConn()
	}
	sc, isSys := c.(syscall.Conn)
	if !isSys {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	if raw.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}) != nil || err != nil {
		return 0, false
	}
	return info.Bytes_acked + info.Bytes_received, true
}
