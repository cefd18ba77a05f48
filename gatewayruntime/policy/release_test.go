package policy

import (
	rtmetrics "runtime/metrics"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

func forcedGCs() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

// Loading an operation's document leaves garbage that is handed back (a
// forced collection) once loads pause for releaseDelay, not before.
func TestLoadReleasesGarbage(t *testing.T) {
	api := specAPI(specDoc, bundle.Route{Method: "GET", Path: "/v1/pets/{id}", UpstreamPath: "/pets/{id}", Validation: bundle.Validation{Request: true}})
	x, err := newSpecIndex(api)
	if err != nil {
		t.Fatal(err)
	}
	before := forcedGCs()
	start := time.Now()
	if _, err := x.load(x.operation("/pets/{id}", "get"), "/pets/{id}", "get"); err != nil {
		t.Fatal(err)
	}
	for forcedGCs() == before {
		if time.Since(start) > 10*time.Second {
			t.Fatal("no collection within 10s of an operation load")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(start); d < releaseDelay {
		t.Fatalf("collected %v after the load, before releaseDelay (%v)", d, releaseDelay)
	}
}
