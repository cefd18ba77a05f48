package compile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// TestBadCorpus gives every file of corpus/bad exactly the outcome the corpus
// README names. Each expectation is a problem code, the pointer and a phrase
// the reason must contain.
func TestBadCorpus(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "bad")
	cases := map[string]struct {
		kinds   *Kinds
		code    string
		pointer string
		line    int
		reason  string
	}{
		"not-yaml.yaml": {code: CodeParseError, line: 3, reason: "not valid YAML or JSON"},
		"unresolved-ref.yaml": {code: CodeUnresolvedRef, line: 11,
			pointer: "/paths/~1pets/get/responses/200/content/application~1json/schema/$ref", reason: "#/components/schemas/DoesNotExist"},
		"external-ref.yaml": {code: CodeExternalRef, line: 11,
			pointer: "/paths/~1pets/get/responses/200/content/application~1json/schema/$ref", reason: "not among the supplied files"},
		"remote-ref.yaml": {code: CodeRemoteRef, line: 11,
			pointer: "/paths/~1pets/get/responses/200/content/application~1json/schema/$ref", reason: "never fetched over the network"},
		"billion-laughs.yaml": {code: CodeTooLarge, line: 9, reason: "aliases expand"},
		"duplicate-route.yaml": {code: CodeDuplicateRoute, line: 7, pointer: "/paths/~1pets~1{name}/get",
			reason: "GET /pets/{id} and GET /pets/{name} match the same requests"},
		"no-version.yaml": {code: CodeNoVersion, reason: `neither swagger: "2.0" nor openapi: 3.x`},
		"missing-endpoint.yaml": {kinds: &Kinds{Namespace: "shop"}, code: CodeEndpointNotFound, line: 3,
			pointer: "/x-gatekiln-endpoint", reason: `Endpoint "no-such-endpoint" not found in namespace "shop"`},
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		tc, ok := cases[name]
		if !ok {
			t.Errorf("%s: no expectation; add one", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			_, err := compileFile(t, filepath.Join(dir, name), tc.kinds)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want a %s problem, got %v", tc.code, err)
			}
			if len(ps) != 1 {
				t.Errorf("want one problem, got %d:\n%v", len(ps), ps)
			}
			p := ps[0]
			if p.Code != tc.code || p.File != name || p.Pointer != tc.pointer || p.Line != tc.line || !strings.Contains(p.Reason, tc.reason) {
				t.Errorf("got  %#v\nwant code %s file %s pointer %q line %d reason containing %q", p, tc.code, name, tc.pointer, tc.line, tc.reason)
			}
			if !strings.HasPrefix(p.Error(), name+": ") {
				t.Errorf("message %q does not start with the file name", p.Error())
			}
		})
	}
	// Resolved standalone, the missing Endpoint is only a name.
	if _, err := compileFile(t, filepath.Join(dir, "missing-endpoint.yaml"), nil); err != nil {
		t.Errorf("missing-endpoint.yaml standalone: %v", err)
	}
}

// TestBillionLaughsBounded checks the alias bomb is refused without expanding
// it: the refusal allocates about what parsing the 700-byte file does.
func TestBillionLaughsBounded(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(corpusDir(t), "bad", "billion-laughs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Files: []File{{Path: "billion-laughs.yaml", Data: data}}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const runs = 20
	for range runs {
		if _, err := Compile(in); err == nil {
			t.Fatal("billion laughs compiled")
		}
	}
	runtime.ReadMemStats(&after)
	perRun := (after.TotalAlloc - before.TotalAlloc) / runs
	if perRun > 1<<20 {
		t.Errorf("refusing the alias bomb allocated %d bytes per run; want under 1 MiB", perRun)
	}
	if allocs := testing.AllocsPerRun(5, func() { _, _ = Compile(in) }); allocs > 20_000 {
		t.Errorf("refusing the alias bomb took %.0f allocations per run; want under 20000", allocs)
	}
}
