package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Pprof serves /debug/pprof/ only in a binary built with the pprof tag; a
// default build refuses the setting rather than ignore it.
func TestPprof(t *testing.T) {
	cfg := Config{Bundle: testAPI(), BindingDir: t.TempDir(), ShutdownDelay: -1, ReloadInterval: time.Hour, Pprof: true}
	g, err := New(cfg)
	if !PprofBuilt {
		if err == nil || !strings.Contains(err.Error(), "-tags pprof") {
			t.Fatalf("New with Pprof in a build without pprof: err = %v, want one naming -tags pprof", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	rec := httptest.NewRecorder()
	g.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Fatalf("GET /debug/pprof/ = %d %.200q, want the profile index", rec.Code, rec.Body.String())
	}
}
