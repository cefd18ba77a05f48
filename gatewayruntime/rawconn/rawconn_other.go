//go:build !linux

package rawconn

import "net"

// Wrap returns c unchanged: raw calls are only used on Linux.
func Wrap(c net.Conn) net.Conn { return c }
