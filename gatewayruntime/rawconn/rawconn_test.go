//go:build linux

package rawconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	t.Cleanup(func() { c.Close(); s.Close() })
	return Wrap(c), Wrap(s)
}

func TestReadWrite(t *testing.T) {
	c, s := pair(t)
	if _, ok := c.(*Conn); !ok {
		t.Fatalf("Wrap returned %T", c)
	}
	// Larger than the socket buffers: the writer must wait for the reader.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18)
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(big)
		done <- err
		c.(*Conn).CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWriteThenRead(t *testing.T) {
	c, s := pair(t)
	go func() {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(s, buf); err != nil {
			return
		}
		_, _ = s.Write(append([]byte("re:"), buf...))
	}()
	buf := make([]byte, 64)
	w, n, err := c.(*Conn).WriteThenRead([]byte("hello"), buf)
	if err != nil || w != 5 || string(buf[:n]) != "re:hello"[:n] || n == 0 {
		t.Fatalf("wrote %d, read %q, %v", w, buf[:n], err)
	}
	// A write larger than the socket buffer stops part way, reading nothing.
	big := bytes.Repeat([]byte("x"), 64<<20)
	w, n, err = c.(*Conn).WriteThenRead(big, buf)
	if err != nil || w >= len(big) || w == 0 || n != 0 {
		t.Fatalf("big: wrote %d of %d, read %d, %v", w, len(big), n, err)
	}
}

func TestDeadlinesAndErrors(t *testing.T) {
	c, s := pair(t)
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	s.Close()
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v", err)
	}
	c.Close()
	if _, err := c.Write([]byte("x")); err == nil || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}
