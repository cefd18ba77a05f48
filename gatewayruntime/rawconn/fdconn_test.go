//go:build linux

package rawconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// polledPair returns a connection accepted by a Listener (on the poller) and
// one dialled by Dial (on the poller too), connected to each other.
func polledPair(t *testing.T) (server, client *FDConn) {
	t.Helper()
	ln := polledListener(t)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err := Dial(context.Background(), ln.Addr().String(), time.Now().Add(5*time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	server, ok := s.(*FDConn)
	if !ok {
		t.Fatalf("Accept returned %T", s)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

func TestPolledReadWrite(t *testing.T) {
	s, c := polledPair(t)
	if c.RemoteAddr().String() != s.LocalAddr().String() || s.RemoteAddr().String() != c.LocalAddr().String() {
		t.Fatalf("addresses: client %v→%v, server %v→%v", c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr())
	}
	// More than the socket buffers hold, so that Write waits for the reader.
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18)
	var got []byte
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, _ = io.ReadAll(s)
	}()
	if n, err := c.Write(want); n != len(want) || err != nil {
		t.Fatalf("write %d, %v", n, err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d", len(got), len(want))
	}
}

func TestPolledWriteThenRead(t *testing.T) {
	s, c := polledPair(t)
	go func() {
		buf := make([]byte, 64)
		n, _ := s.Read(buf)
		_, _ = s.Write(append([]byte("re: "), buf[:n]...))
	}()
	buf := make([]byte, 64)
	written, n, err := c.WriteThenRead([]byte("ping"), buf)
	if err != nil || written != 4 || string(buf[:n]) != "re: ping" {
		t.Fatalf("written %d, read %q, %v", written, buf[:n], err)
	}
}

// TestPolledDrained: Drained is false while anything read has not been
// taken (a read that filled its buffer, bytes that arrived later, EOF) and
// true once the socket is empty.
func TestPolledDrained(t *testing.T) {
	s, c := polledPair(t)
	// settle lets the poller see what was just written.
	settle := func() { time.Sleep(20 * time.Millisecond) }
	if !c.Drained() {
		t.Fatal("a new connection is not drained")
	}
	_, _ = s.Write([]byte("abcdef"))
	settle()
	buf := make([]byte, 3)
	if n, err := c.Read(buf); n != 3 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	if c.Drained() {
		t.Fatal("drained with 3 bytes unread")
	}
	buf = make([]byte, 64)
	if n, err := c.Read(buf); n != 3 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	if !c.Drained() {
		t.Fatal("not drained after a short read took the rest")
	}
	// Bytes that arrive afterwards.
	_, _ = s.Write([]byte("late"))
	settle()
	if c.Drained() {
		t.Fatal("drained with late bytes unread")
	}
	if n, err := c.Read(buf); n != 4 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	// A read that fills its buffer exactly and leaves nothing: one peek says so.
	_, _ = s.Write([]byte("xyz"))
	settle()
	if n, err := c.Read(buf[:3]); n != 3 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	if !c.Drained() {
		t.Fatal("not drained after a read took all there was")
	}
	if !c.Drained() {
		t.Fatal("not drained when asked again (the peek must leave nothing behind)")
	}
	// EOF.
	_ = s.CloseWrite()
	settle()
	if c.Drained() {
		t.Fatal("drained with the peer's FIN unread")
	}
}

func TestPolledWriteThenWait(t *testing.T) {
	s, c := polledPair(t)
	answer := make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		n, _ := s.Read(buf)
		<-answer
		_, _ = s.Write(append([]byte("re: "), buf[:n]...))
	}()
	waited := make(chan error, 1)
	go func() {
		written, err := c.WriteThenWait([]byte("ping"))
		if err == nil && written != 4 {
			err = fmt.Errorf("wrote %d bytes", written)
		}
		waited <- err
	}()
	select {
	case err := <-waited:
		t.Fatalf("WriteThenWait returned before the answer: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(answer)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "re: ping" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

func TestPolledRawRead(t *testing.T) {
	s, c := polledPair(t)
	go func() {
		for _, part := range []string{"he", "llo"} {
			_, _ = c.Write([]byte(part))
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var got []byte
	buf := make([]byte, 16)
	err := s.RawRead(func(fd uintptr) bool {
		n, ok, err := s.ReadFD(fd, buf)
		if err != nil {
			t.Error(err)
			return true
		}
		if ok {
			got = append(got, buf[:n]...)
		}
		return len(got) == 5
	})
	if err != nil || string(got) != "hello" {
		t.Fatalf("RawRead: %q, %v", got, err)
	}
}

func TestPolledDeadlines(t *testing.T) {
	s, c := polledPair(t)
	buf := make([]byte, 8)
	tests := []struct {
		name     string
		deadline time.Time
	}{
		{"in the future", time.Now().Add(30 * time.Millisecond)},
		{"already past", time.Now().Add(-time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = s.SetReadDeadline(tt.deadline)
			_, err := s.Read(buf)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read past the deadline: %v", err)
			}
			// Cleared, the connection reads again.
			_ = s.SetReadDeadline(time.Time{})
			_, _ = c.Write([]byte("x"))
			if n, err := s.Read(buf); n != 1 || err != nil {
				t.Fatalf("read after clearing: %d, %v", n, err)
			}
		})
	}
	// A deadline moved later before it fires does not fire early.
	_ = s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_ = s.SetReadDeadline(time.Now().Add(time.Hour))
	go func() {
		time.Sleep(60 * time.Millisecond)
		_, _ = c.Write([]byte("y"))
	}()
	if n, err := s.Read(buf); n != 1 || err != nil {
		t.Fatalf("read with a moved deadline: %d, %v", n, err)
	}
}

func TestPolledClose(t *testing.T) {
	s, c := polledPair(t)
	// Close wakes a blocked Read and the peer sees the end of the stream.
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked read after Close: %v", err)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// polledListener listens on a loopback port, accepting onto the poller.
func polledListener(t *testing.T) *Listener {
	t.Helper()
	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(tl)
	if err != nil {
		tl.Close()
		t.Fatal(err)
	}
	return ln
}

// TestPolledListenerClose: closing the Listener, or the net.TCPListener it
// took over (its owner may close that one), ends a blocked Accept and stops
// the port accepting.
func TestPolledListenerClose(t *testing.T) {
	tests := []struct {
		name  string
		close func(*Listener) error
	}{
		{"Listener.Close", (*Listener).Close},
		{"the owner closes the net.TCPListener", func(l *Listener) error { return l.tl.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := polledListener(t)
			done := make(chan error, 1)
			go func() {
				_, err := ln.Accept()
				done <- err
			}()
			time.Sleep(20 * time.Millisecond)
			addr := ln.Addr().String()
			if err := tt.close(ln); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("blocked Accept after the close: %v", err)
				}
			case <-time.After(10 * closeCheck):
				t.Fatal("Accept did not notice the close")
			}
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				t.Fatal("the closed listener still accepts connections")
			}
		})
	}
}

func TestPolledDialErrors(t *testing.T) {
	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	closed := tl.Addr().String()
	tl.Close()
	tests := []struct {
		name, addr string
		deadline   time.Time
		timeout    bool
	}{
		{"refused", closed, time.Now().Add(5 * time.Second), false},
		{"bad address", "127.0.0.1", time.Now().Add(5 * time.Second), false},
		{"deadline past", closed, time.Now().Add(-time.Second), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(context.Background(), tt.addr, tt.deadline, 0)
			if err == nil {
				c.Close()
				t.Fatal("dialled")
			}
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "dial" {
				t.Fatalf("error %v (%T), want a dial *net.OpError", err, err)
			}
			var ne net.Error
			if got := errors.As(err, &ne) && ne.Timeout(); got != tt.timeout {
				t.Fatalf("timeout %v, want %v: %v", got, tt.timeout, err)
			}
		})
	}
}
