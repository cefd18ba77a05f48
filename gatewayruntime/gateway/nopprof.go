//go:build !pprof

package gateway

import "net/http"

// PprofBuilt reports whether Config.Pprof can serve /debug/pprof/. A default
// build leaves net/http/pprof out: linking it keeps the runtime's heap
// profiling on and adds its code, about 0.5 MiB of the gateway's idle memory
// (each replica's), for a tool a production gateway rarely needs.
const PprofBuilt = false

func servePprof(*http.ServeMux) {}
