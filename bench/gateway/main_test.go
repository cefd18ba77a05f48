package main

import (
	"strings"
	"testing"

	"github.com/gatekiln/gatekiln/bench/load"
)

func TestQuantile(t *testing.T) {
	// Level i/2000 holds i ms: index i-1.
	qs := make([]float64, 2000)
	for i := range qs {
		qs[i] = float64(i + 1)
	}
	r := result{Result: load.Result{Quantiles: qs}}
	for _, tc := range []struct {
		q    float64
		want float64
	}{
		{0.5, 1000},
		{0.9, 1800},
		{0.999, 1998},
		{1, 2000},
		{0, 1}, // clamped to the first level
	} {
		if got := r.quantile(tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := (result{}).quantile(0.99); got != 0 {
		t.Errorf("quantile without a distribution = %v, want 0", got)
	}
}

func TestProxyConf(t *testing.T) {
	bare := proxyConf("127.0.0.1:1", "127.0.0.1:2", false)
	same := proxyConf("127.0.0.1:1", "127.0.0.1:2", true)
	for _, h := range []string{"X-Request-Id $request_id", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if strings.Contains(bare, h) {
			t.Errorf("bare nginx sets %s", h)
		}
		if !strings.Contains(same, h) {
			t.Errorf("nginx with the gateway's headers lacks %s", h)
		}
	}
	// Both keep upstream keep-alive, and the added lines leave the braces balanced.
	for _, conf := range []string{bare, same} {
		if !strings.Contains(conf, `proxy_set_header Connection "";`) || !strings.Contains(conf, "keepalive 256;") {
			t.Errorf("no upstream keep-alive:\n%s", conf)
		}
		if strings.Count(conf, "{") != strings.Count(conf, "}") {
			t.Errorf("unbalanced braces:\n%s", conf)
		}
	}
}
