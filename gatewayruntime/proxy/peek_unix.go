//go:build unix

package proxy

import (
	"errors"
	"syscall"
)

// peekAlive reports whether an idle socket has neither data nor EOF pending.
func peekAlive(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err != nil {
		return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = n
	return false
}
