package gateway

import (
	"context"
	"fmt"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// DefaultHeapFloor is the heap size below which the command's gateway does
// not collect (Config.HeapFloor).
const DefaultHeapFloor = 16 << 20

// maxGCPercent caps the raised target (a goal a million times the live heap
// is no goal at all).
const maxGCPercent = 1e8

// The proxy's steady state allocates little (about 90 bytes a request: the
// request head's strings and the request id) over a small live heap (a few
// MB of routes, keys and schemas), so at the default GC target it collects
// about every second under load. Each collection marks the whole live heap on
// the event loop's CPU, and the requests queued behind it make the latency
// tail: measured here, collecting about four times less often moved p99 from
// 1.11× nginx's to 0.95× (paired rounds). A floor under the heap goal does
// that without changing what a large heap (a big definition) gets, and leaves
// idle memory as it was: the heap only grows toward the floor under load.

// tuneGC sets the GC target so that the heap goal is at least floor. base is
// the target the operator set (GOGC; 100 by default); a negative one (GC off)
// is left alone.
func tuneGC(base int, floor uint64) {
	if floor == 0 || base < 0 {
		return
	}
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}
	metrics.Read(s)
	var v [3]uint64
	for i, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return
		}
		v[i] = x.Value.Uint64()
	}
	debug.SetGCPercent(floorPercent(base, v[0], v[1]+v[2], floor))
}

// floorPercent is the GC target that makes the heap goal at least floor, and
// never below base. The runtime's goal is the larger of live + (live +
// roots)*p/100, where roots are the stacks and globals it scans, and its
// minimum heap, 4 MiB*p/100: the smallest p that lifts either to the floor.
// (Taken from the live heap alone, the target lifted the minimum heap to
// several times the floor: about 60 MB for 16 MiB, and as much resident
// under load.)
func floorPercent(base int, live, roots, floor uint64) int {
	if live == 0 {
		live = 1 << 20
	}
	if live >= floor {
		return base
	}
	// In float, capped: a floor near 2^64 must not wrap to a negative
	// target, which would turn the GC off.
	byGoal := float64(floor-live) * 100 / float64(live+roots)
	byMinimum := float64(floor) * 100 / runtimeHeapMinimum
	p := min(byGoal, byMinimum, maxGCPercent)
	return max(int(p), base)
}

// runtimeHeapMinimum is the Go runtime's minimum heap goal at GOGC=100
// (defaultHeapMinimum); it scales with the target. TestHeapFloor reads the
// runtime's goal, so a runtime that changes it fails there.
const runtimeHeapMinimum = 4 << 20

// A raised GC target has a cost at idle: garbage is only collected once the
// heap reaches the goal, and the runtime's background scavenger keeps free
// heap memory up to about the goal mapped. So a burst of requests (about 90
// bytes each) leaves up to the floor's worth resident while the gateway then
// idles, nine MB after 100k requests. releaseIdle hands it back once
// allocation has paused for a few seconds: not in the short gaps of bursty
// traffic, where the memory would only be faulted in again.

const (
	idleEvery   = time.Second // how often releaseIdle looks
	idleLooks   = 5           // looks in a row without allocation: idle
	idleAllocs  = 256 << 10   // allocated between two looks: still idle
	releaseFrom = 1 << 20     // reclaimable memory worth a collection
)

// releaseHeap is debug.FreeOSMemory (a test counts the calls).
var releaseHeap = debug.FreeOSMemory

// releaseIdle collects and returns the free heap to the OS
// (debug.FreeOSMemory: a collection, then a full scavenge) when less than
// idleAllocs was allocated between each of the last idleLooks looks and
// releaseFrom more is reclaimable (garbage not yet collected, free memory
// still mapped) than a release left, until ctx ends. Under load it does
// nothing (allocation never pauses); at idle it acts once. (Some free memory
// a release cannot return, a few hundred KiB, at times a few MB, the runtime
// keeps: its background scavenger can mark a heap chunk as having nothing
// to return while it still has free pages, and FreeOSMemory then skips it;
// see bench/gateway's cold starts. kept is what the last release left, so
// that memory does not trigger release after release.)
func releaseIdle(ctx context.Context, every time.Duration) {
	s := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	read := func() (allocs, reclaimable uint64) {
		metrics.Read(s)
		for _, x := range s {
			if x.Value.Kind() != metrics.KindUint64 {
				return 0, 0
			}
		}
		free, objects, live := s[1].Value.Uint64(), s[2].Value.Uint64(), s[3].Value.Uint64()
		reclaimable = free
		if objects > live {
			reclaimable += objects - live // garbage since the last collection
		}
		return s[0].Value.Uint64(), reclaimable
	}
	last, _ := read()
	var kept uint64 // reclaimable after the last release
	quiet := 0      // looks in a row without allocation
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		allocs, reclaimable := read()
		if allocs-last < idleAllocs {
			quiet++
		} else {
			quiet = 0
		}
		last = allocs
		if quiet >= idleLooks && reclaimable >= kept+releaseFrom {
			releaseHeap()
			last, kept = read()
		}
	}
}

// gcPercent is the GC target in force.
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 100
	}
	return int(int64(s[0].Value.Uint64())) // GC off reads as -1
}

// ByteSize is a flag value in bytes, written as GOMEMLIMIT is: a number with
// an optional B, KiB, MiB, GiB or TiB suffix ("16MiB").
type ByteSize uint64

var byteUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// UnmarshalText parses a size; anything else is an error naming what is accepted.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	num, shift := s, uint(0)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > math.MaxUint64>>shift {
		return fmt.Errorf("%q is not a size: want bytes, optionally with a B, KiB, MiB, GiB or TiB suffix (16MiB)", s)
	}
	*b = ByteSize(n << shift)
	return nil
}

// MarshalText writes the size in the largest unit that divides it.
func (b ByteSize) MarshalText() ([]byte, error) {
	for _, u := range byteUnits {
		if u.shift > 0 && b != 0 && uint64(b)%(1<<u.shift) == 0 {
			return []byte(strconv.FormatUint(uint64(b)>>u.shift, 10) + u.suffix), nil
		}
	}
	return []byte(strconv.FormatUint(uint64(b), 10)), nil
}
