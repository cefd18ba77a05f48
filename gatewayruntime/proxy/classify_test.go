package proxy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	dial := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	tests := []struct {
		name string
		err  error
		want failure
	}{
		{"refused", dial(syscall.ECONNREFUSED), failConnect},
		{"dial timeout", &net.OpError{Op: "dial", Err: timeoutErr{}}, failTimeout},
		{"read timeout", &net.OpError{Op: "read", Err: timeoutErr{}}, failTimeout},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, failReset},
		{"out of descriptors", &net.OpError{Op: "dial", Err: os.NewSyscallError("socket", syscall.EMFILE)}, failLocal},
		{"system file table full", dial(syscall.ENFILE), failLocal},
		{"out of ports", dial(syscall.EADDRNOTAVAIL), failLocal},
		{"wrapped", fmt.Errorf("attempt: %w", dial(syscall.ENOBUFS)), failLocal},
		{"other", errors.New("unexpected"), failReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err); got != tt.want {
				t.Fatalf("classify(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

// TestBreakerAbandon: an attempt that failed on the gateway's side frees a
// half-open probe slot and changes nothing else.
func TestBreakerAbandon(t *testing.T) {
	b := newBreaker(breakerConfig{failures: 1, interval: 1e9, baseEjection: 1, probes: 1}, nil)
	b.failure(false) // ejected for 1 ns
	ok, probe := b.allow()
	if !ok || !probe {
		t.Fatalf("after the ejection: allow %v probe %v, want a probe", ok, probe)
	}
	if ok, _ := b.allow(); ok {
		t.Fatal("a second probe was let through at once")
	}
	b.abandon(true)
	if b.state.Load() != circuitHalfOpen {
		t.Fatalf("state %d after an abandoned probe, want half-open", b.state.Load())
	}
	if ok, probe := b.allow(); !ok || !probe {
		t.Fatal("the abandoned probe's slot was not freed")
	}
}
