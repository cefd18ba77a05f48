package load

import (
	"strings"
	"testing"
)

const report = `Running 2s test @ http://127.0.0.1:8080/v1/pets
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.80ms  400.00us   9.00ms   90.00%
  Latency Distribution
     50%  750.00us
     75%    1.90ms
     90%    2.20ms
     99%    1.20s
  70000 requests in 2.00s, 9.00MB read
Requests/sec:  35000.50
Transfer/sec:      4.50MB
`

func TestParseWrk(t *testing.T) {
	r, err := ParseWrk(report)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 35000.50 || r.Requests != 70000 || r.P50 != 0.75 || r.P99 != 1200 {
		t.Errorf("ParseWrk = %+v, want 35000.5 req/s, 70000 requests, p50 0.75 ms, p99 1200 ms", r)
	}
	for _, bad := range []string{
		strings.Replace(report, "Transfer/sec", "  Non-2xx or 3xx responses: 12\nTransfer/sec", 1),
		strings.Replace(report, "Requests/sec", "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec", 1),
		"wrk: command not found",
	} {
		if _, err := ParseWrk(bad); err == nil {
			t.Errorf("ParseWrk accepted:\n%s", bad)
		}
	}
}
