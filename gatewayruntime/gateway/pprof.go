//go:build pprof

package gateway

import (
	"net/http"
	"net/http/pprof"
)

// PprofBuilt reports whether Config.Pprof can serve /debug/pprof/.
const PprofBuilt = true

func servePprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
}
