//go:build linux

package rawconn

import (
	"errors"
	"net"
	"os"
	ossignal "os/signal"
	"syscall"
	"testing"
	"time"
)

// A write to a peer that has gone fails with an error and raises no SIGPIPE
// (the sockets are written with MSG_NOSIGNAL).
func TestWriteToClosedPeer(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	ossignal.Notify(sigs, syscall.SIGPIPE)
	defer ossignal.Stop(sigs)
	for _, tc := range []struct {
		name string
		pair func(*testing.T) (net.Conn, net.Conn)
	}{
		{"Wrap", pair},
		{"FDConn", func(t *testing.T) (net.Conn, net.Conn) { s, c := polledPair(t); return s, c }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer, c := tc.pair(t)
			// Abortive close: the peer answers further segments with a reset.
			if tcp, ok := peer.(interface{ SetLinger(int) error }); ok {
				_ = tcp.SetLinger(0)
			}
			peer.Close()
			var err error
			for i := 0; i < 100 && err == nil; i++ {
				_, err = c.Write([]byte("after the peer closed\n"))
				if err == nil {
					time.Sleep(time.Millisecond) // let the reset arrive
				}
			}
			if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("write to a closed peer: %v, want EPIPE or ECONNRESET", err)
			}
			select {
			case <-sigs:
				t.Fatal("the write raised SIGPIPE")
			case <-time.After(50 * time.Millisecond):
			}
		})
	}
}
