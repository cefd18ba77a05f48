package gateway

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves the admin port: /metrics, /healthz (alive), /readyz
// (ready to take traffic; the body says why not) and, when enabled, pprof.
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", g.readyz)
	if g.cfg.Pprof {
		servePprof(mux)
	}
	return mux
}

// readyz is 200 when the gateway can serve every route, else 503 listing what
// is missing, one reason a line.
func (g *Gateway) readyz(w http.ResponseWriter, _ *http.Request) {
	why := g.notReady()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	if len(why) == 0 {
		g.metrics.Ready.Set(1)
		b.WriteString("ok\n")
	} else {
		g.metrics.Ready.Set(0)
		w.WriteHeader(http.StatusServiceUnavailable)
		b.WriteString("not ready:\n")
		for _, s := range why {
			b.WriteString("- " + s + "\n")
		}
	}
	for _, s := range g.warnings() {
		b.WriteString("warning: " + s + "\n")
	}
	_, _ = w.Write([]byte(b.String()))
}

// Ready reports readiness and the reasons against it (tests).
func (g *Gateway) Ready() (bool, []string) {
	why := g.notReady()
	return len(why) == 0, why
}
