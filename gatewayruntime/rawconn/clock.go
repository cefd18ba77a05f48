package rawconn

import "time"

// clockBase anchors Mono.
var clockBase = time.Now()

// Mono is time.Now for deadlines and durations, which only compare
// monotonic readings: it makes one vDSO call (time.Since) where time.Now
// makes two, and derives the wall reading instead.
func Mono() time.Time { return clockBase.Add(time.Since(clockBase)) }
