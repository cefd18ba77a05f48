package proxy

import (
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// TestBreakerStates walks one URL's circuit through its states with a fake clock.
func TestBreakerStates(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBreaker(newBreakerConfig(&bundle.CircuitBreaker{
		ConsecutiveFailures: 3, Interval: bundle.Duration(time.Second), BaseEjection: bundle.Duration(10 * time.Second), MaxRequests: 1,
	}), nil)
	b.now = func() time.Time { return now }
	step := func(d time.Duration) { now = now.Add(d) }
	allow := func(want, wantProbe bool) bool {
		t.Helper()
		ok, probe := b.allow()
		if ok != want || probe != wantProbe {
			t.Fatalf("at %v: allow = %v, probe %v; want %v, %v (state %d)", now.Unix()-1000, ok, probe, want, wantProbe, b.state.Load())
		}
		return probe
	}

	// Failures further apart than the interval do not add up.
	for i := 0; i < 5; i++ {
		allow(true, false)
		b.failure(false)
		step(2 * time.Second)
	}
	if b.state.Load() != circuitClosed {
		t.Fatal("spread-out failures opened the circuit")
	}
	// A success resets the count.
	b.failure(false)
	b.failure(false)
	b.success(false)
	b.failure(false)
	b.failure(false)
	if b.state.Load() != circuitClosed {
		t.Fatal("a success did not reset the count")
	}
	b.failure(false) // third in a row
	allow(false, false)
	step(9 * time.Second)
	allow(false, false)
	if ra := b.retryAfter(); ra != time.Second {
		t.Fatalf("retryAfter %v", ra)
	}
	step(time.Second)
	// Half-open: one probe at a time.
	probe := allow(true, true)
	allow(false, false)
	b.failure(probe) // the probe fails: ejected again, twice as long
	step(19 * time.Second)
	allow(false, false)
	step(time.Second)
	probe = allow(true, true)
	b.success(probe)
	if b.state.Load() != circuitClosed {
		t.Fatal("a successful probe did not close the circuit")
	}
	allow(true, false)
	// The ejection count starts over after closing.
	for i := 0; i < 3; i++ {
		b.failure(false)
	}
	step(10 * time.Second)
	allow(true, true)
}

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		in   *bundle.Retries
		want retryPolicy
		err  bool
	}{
		{nil, retryPolicy{}, false},
		{&bundle.Retries{Attempts: 0}, retryPolicy{}, false},
		{&bundle.Retries{Attempts: 2}, retryPolicy{attempts: 2, onConnect: true, onReset: true}, false},
		{&bundle.Retries{Attempts: 1, On: []string{"5xx"}, PerTry: bundle.Duration(time.Second)}, retryPolicy{attempts: 1, on5xx: true, perTry: time.Second}, false},
		{&bundle.Retries{Attempts: 1, On: []string{"gateway-error"}}, retryPolicy{}, true},
	}
	for _, tt := range tests {
		got, err := newRetryPolicy(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("newRetryPolicy(%+v) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	if (retryPolicy{onReset: true}).wants(failTimeout) {
		t.Error("a route timeout must not be retried without a per-try timeout")
	}
}

func TestClientBase(t *testing.T) {
	tests := []struct {
		path, upstream string
		want           string
	}{
		{"/v2/pets/{id}", "/pets/{id}", "/v2"},
		{"/api/v1/pets", "/pets", "/api/v1"},
		{"/pets", "/pets", ""},
		{"/v1/", "/", "/v1"},
		{"/v1", "", "/v1"},
	}
	for _, tt := range tests {
		if got := clientBase(&bundle.Route{Path: tt.path, UpstreamPath: tt.upstream}); got != tt.want {
			t.Errorf("clientBase(%s, %s) = %q, want %q", tt.path, tt.upstream, got, tt.want)
		}
	}
}
