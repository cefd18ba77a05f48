package gateway

import (
	"bytes"
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFloorPercent(t *testing.T) {
	const mb = 1 << 20
	for _, tt := range []struct {
		name               string
		base               int
		live, roots, floor uint64
		want               int
	}{
		// The runtime's minimum heap, 4 MiB at 100, reaches 16 MiB at 400.
		{"small live heap: the minimum heap is lifted to the floor", 100, 2 * mb, 0, 16 * mb, 400},
		{"larger live heap: the goal is lifted to the floor", 100, 6 * mb, 2 * mb, 32 * mb, 325},
		{"stacks and globals count toward the goal", 100, 2 * mb, 2 * mb, 16 * mb, 350},
		{"live heap half the floor: the base target suffices", 100, 8 * mb, 0, 16 * mb, 100},
		{"live heap over the floor: the base target", 100, 64 * mb, 1 * mb, 16 * mb, 100},
		{"a higher base target is kept", 1000, 2 * mb, 0, 16 * mb, 1000},
		{"a lower base target is raised", 50, 4 * mb, 0, 16 * mb, 300},
		{"no live heap reading yet: taken as 1 MB", 100, 0, 0, 16 * mb, 400},
		{"a floor near 2^64 is capped, not wrapped", 100, 1, 0, 1<<64 - 1, 1e8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := floorPercent(tt.base, tt.live, tt.roots, tt.floor); got != tt.want {
				t.Errorf("floorPercent(%d, %d, %d, %d) = %d, want %d", tt.base, tt.live, tt.roots, tt.floor, got, tt.want)
			}
		})
	}
}

// With HeapFloor, loading the Binding raises the process's GC target to the
// floor; with the GC off (GOGC=off) it is left off.
func TestHeapFloor(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	for _, tt := range []struct {
		name string
		base int
		want func(int) bool
	}{
		{"raised", 100, func(p int) bool { return p > 100 }},
		{"GC off stays off", -1, func(p int) bool { return p == -1 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(tt.base)
			up := newUpstream(t, nil)
			newHarness(t, testAPI(), bindingTo(up.url), func(c *Config) { c.HeapFloor = 1 << 30 })
			deadline := time.Now().Add(10 * time.Second)
			for !tt.want(gcPercent()) {
				if time.Now().After(deadline) {
					t.Fatalf("GC target %d after the Binding loaded", gcPercent())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if tt.base < 0 {
				// Still off once the load's collection and tuning have had time.
				for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
					if p := gcPercent(); p != -1 {
						t.Fatalf("GC target %d, want it left off", p)
					}
				}
				return
			}
			// The floor (1 GiB) over a live heap of a few MB: hundreds of times,
			// and the runtime's goal at the floor, not some multiple of it.
			if p := gcPercent(); p < 1000 {
				t.Fatalf("GC target %d, want the heap goal at the 1 GiB floor", p)
			}
			if goal := heapGoal(); goal < 1<<30*99/100 || goal > 1<<30*101/100 {
				t.Fatalf("heap goal %d MB, want the 1 GiB floor", goal>>20)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want ByteSize
		text string // MarshalText of want; "" for an error
	}{
		{"16MiB", 16 << 20, "16MiB"},
		{"0", 0, "0"},
		{"1536KiB", 1536 << 10, "1536KiB"},
		{"100", 100, "100"},
		{"2048B", 2048, "2KiB"},
		{" 1GiB ", 1 << 30, "1GiB"},
		{"1TiB", 1 << 40, "1TiB"},
		{"16MB", 0, ""},
		{"-1", 0, ""},
		{"MiB", 0, ""},
		{"1.5GiB", 0, ""},
		{"99999999TiB", 0, ""},
	} {
		t.Run(tt.in, func(t *testing.T) {
			var b ByteSize
			err := b.UnmarshalText([]byte(tt.in))
			if tt.text == "" {
				if err == nil || !strings.Contains(err.Error(), "not a size") {
					t.Fatalf("UnmarshalText(%q) = %d, %v; want an error saying it is not a size", tt.in, b, err)
				}
				return
			}
			if err != nil || b != tt.want {
				t.Fatalf("UnmarshalText(%q) = %d, %v; want %d", tt.in, b, err, tt.want)
			}
			if got, _ := b.MarshalText(); string(got) != tt.text {
				t.Errorf("MarshalText(%d) = %q, want %q", b, got, tt.text)
			}
		})
	}
}

// heapFree is the free heap memory the runtime keeps mapped.
func heapFree() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

var sink [][]byte

// makeGarbage allocates 6 MiB and drops it.
func makeGarbage() {
	for range 96 {
		sink = append(sink, make([]byte, 64<<10))
	}
	sink = nil
}

// TestReleaseIdle: with a raised GC target (as the heap floor sets) the
// scavenger keeps freed memory mapped; once allocation pauses releaseIdle
// hands it back.
func TestReleaseIdle(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(10000))
	debug.FreeOSMemory()
	makeGarbage()
	runtime.GC() // 6 MiB freed, not released
	before := heapFree()
	if before < 4<<20 {
		t.Skipf("only %d bytes free after the collection: nothing to test", before)
	}
	stop := startReleaseIdle(20 * time.Millisecond)
	defer stop()
	// Most of the 6 MiB goes (the runtime keeps some free memory it does
	// not return: a few hundred KiB, at times a few MB).
	deadline := time.Now().Add(5 * time.Second)
	for heapFree() > before-3<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d bytes of free heap still mapped after 5s idle", heapFree(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// heapObjects is the heap memory taken by objects, live or garbage.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestReleaseIdleGarbage: garbage the raised target has not collected yet
// (a burst of requests below the floor) is collected once allocation pauses.
func TestReleaseIdleGarbage(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(10000))
	runtime.GC()
	makeGarbage() // 6 MiB of garbage, not collected (the goal is far)
	before := heapObjects()
	stop := startReleaseIdle(20 * time.Millisecond)
	defer stop()
	deadline := time.Now().Add(5 * time.Second)
	for heapObjects() > before-4<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("heap objects %d bytes after 5s idle, %d before: the garbage was not collected", heapObjects(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReleaseIdleBusy: while the process keeps allocating, releaseIdle does
// not collect (a collection under load is what the floor avoids).
func TestReleaseIdleBusy(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(10000))
	var calls atomic.Int32
	defer func(f func()) { releaseHeap = f }(releaseHeap)
	releaseHeap = func() { calls.Add(1) }
	makeGarbage() // free memory for it to want
	runtime.GC()
	stop := startReleaseIdle(100 * time.Millisecond) // five quiet looks would need the whole run stalled
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
		sink = append(sink[:0], make([]byte, 64<<10)) // ~6 MiB per interval
		time.Sleep(500 * time.Microsecond)
	}
	stop()
	sink = nil
	if n := calls.Load(); n != 0 {
		t.Errorf("released %d times while allocating", n)
	}
}

// TestReleaseIdleOnce: free memory that a release could not return does
// not make releaseIdle collect again at every look.
func TestReleaseIdleOnce(t *testing.T) {
	waitPostLoad(t)
	defer debug.SetGCPercent(debug.SetGCPercent(10000))
	var calls atomic.Int32
	defer func(f func()) { releaseHeap = f }(releaseHeap)
	releaseHeap = func() { calls.Add(1) } // releases nothing: the free memory stays
	makeGarbage()
	runtime.GC()
	stop := startReleaseIdle(20 * time.Millisecond)
	defer stop()
	for deadline := time.Now().Add(5 * time.Second); calls.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never released")
		}
	}
	time.Sleep(200 * time.Millisecond) // ten more idle looks
	if n := calls.Load(); n != 1 {
		t.Errorf("released %d times, want once", n)
	}
}

// waitPostLoad waits until no gateway is loading a Binding or running what
// follows a load (reload's goroutine: debug.FreeOSMemory, then the GC
// tuning), which outlives Gateway.Close. An earlier test's gateway doing so
// while a test here measures the heap takes away the free memory the test
// made (a forced collection and a full scavenge), and TestReleaseIdleOnce
// would then wait in vain for a release. No goroutine names the gateway it
// belongs to, so this reads every goroutine's stack.
func waitPostLoad(t testing.TB) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		n := runtime.Stack(buf, true)
		if n == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if !bytes.Contains(buf[:n], []byte("gatewayruntime/gateway.(*Gateway).reload")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a gateway still loading its Binding after 10s:\n%s", buf[:n])
		}
	}
}

// startReleaseIdle runs releaseIdle until the returned stop, which waits
// for it to end.
func startReleaseIdle(every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		releaseIdle(ctx, every)
	}()
	return func() { cancel(); <-done }
}

func heapGoal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
