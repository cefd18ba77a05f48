package gateway

import (
	"runtime/debug"
	"runtime/metrics"
)

// DefaultHeapFloor is the heap size below which the command's gateway does
// not collect (Config.HeapFloor).
const DefaultHeapFloor = 16 << 20

// The proxy's steady state allocates little (about 70 bytes a request: the
// request head's strings and the request id) over a small live heap (a few
// MB of routes, keys and schemas), so at the default GC target it collects
// every half second under load. Each collection marks the whole live heap on
// the event loop's CPU, and the requests queued behind it make the latency
// tail: measured here, collecting about four times less often moved p99 from
// 1.11× nginx's to 0.95× (paired rounds). A floor under the heap goal does
// that without changing what a large heap (a big definition) gets, and leaves
// idle memory as it was: the heap only grows toward the floor under load.

// tuneGC sets the GC target so that the heap goal, twice the live heap at
// the base target, is at least floor. base is the target the operator set
// (GOGC; 100 by default); a negative one (GC off) is left alone.
func tuneGC(base int, floor uint64) {
	if floor == 0 || base < 0 {
		return
	}
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	debug.SetGCPercent(floorPercent(base, s[0].Value.Uint64(), floor))
}

// floorPercent is the GC target that makes the heap goal, live*(1+p/100),
// at least floor, and never below base.
func floorPercent(base int, live, floor uint64) int {
	if live == 0 {
		live = 1 << 20
	}
	if live >= floor {
		return base
	}
	p := int((floor - live) * 100 / live)
	return max(p, base)
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
