package gateway

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/router"
)

var update = flag.Bool("update", false, "rewrite golden files")

// corpusDir holds the real-world definitions (see its README).
const corpusDir = "../../../shared/corpus"

// routeList is what the routing golden test needs of a compiled corpus
// Bundle: its routes. It is extracted with -update by compiling the corpus
// with the gatekiln CLI (the runtime never imports the builder).
type routeList struct {
	Title    string      `json:"title"`
	BasePath string      `json:"basePath"`
	Routes   [][2]string `json:"routes"`
}

// TestGoldenRoutingTables routes, for every corpus Bundle, a request made
// from each route (parameters filled in), the same path with a trailing
// slash, and OPTIONS and an unsupported method on each path, and compares the
// outcomes with testdata/routing/*.golden.
func TestGoldenRoutingTables(t *testing.T) {
	if *update {
		extractRouteLists(t)
	}
	inputs, err := filepath.Glob("testdata/routes/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no route lists in testdata/routes (run with -update): %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var rl routeList
			if err := json.Unmarshal(data, &rl); err != nil {
				t.Fatal(err)
			}
			got := routingTable(t, &rl)
			golden := filepath.Join("testdata", "routing", name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Fatalf("routing table differs from %s (run with -update and review the diff):\n%s", golden, firstDiff(string(want), got))
			}
		})
	}
}

func routingTable(t *testing.T, rl *routeList) string {
	entries := make([]router.Entry[int], len(rl.Routes))
	for i, r := range rl.Routes {
		entries[i] = router.Entry[int]{Method: r[0], Path: r[1], Value: i}
	}
	rt, err := router.Compile(entries)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s, base path %s, %d routes\n", rl.Title, rl.BasePath, len(rl.Routes))
	probe := func(method, path string) router.Result[int] {
		res, params := rt.Match(method, path, nil)
		fmt.Fprintf(&b, "%s %s -> ", method, path)
		switch res.Status {
		case router.Found:
			r := rl.Routes[res.Value]
			fmt.Fprintf(&b, "%s %s", r[0], r[1])
			for _, p := range params {
				fmt.Fprintf(&b, " %s=%q", p.Name, p.Value)
			}
		case router.NotFound:
			b.WriteString("404")
		case router.MethodNotAllowed:
			fmt.Fprintf(&b, "405 Allow: %s", res.Allow)
		case router.Options:
			fmt.Fprintf(&b, "OPTIONS Allow: %s", res.Allow)
		case router.BadPath:
			b.WriteString("400")
		}
		b.WriteString("\n")
		return res
	}
	paths := map[string]bool{}
	for _, r := range rl.Routes {
		path := fill(r[1])
		if res := probe(r[0], path); res.Status != router.Found || rl.Routes[res.Value] != r {
			t.Errorf("%s %s: a request made from the route does not reach it", r[0], r[1])
		}
		paths[path] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		probe(http.MethodOptions, p)
		probe("PROPFIND", p)
		if !strings.HasSuffix(p, "/") {
			probe(http.MethodGet, p+"/")
		}
	}
	return b.String()
}

// fill replaces each {param} with a sample value (the same one for a name
// used twice), percent-encoding a slash in every third so that encoded
// slashes are exercised too.
func fill(template string) string {
	var b strings.Builder
	values := map[string]string{}
	for {
		i := strings.IndexByte(template, '{')
		if i < 0 {
			b.WriteString(template)
			return b.String()
		}
		j := strings.IndexByte(template[i:], '}')
		b.WriteString(template[:i])
		name := template[i+1 : i+j]
		v, ok := values[name]
		if !ok {
			n := len(values) + 1
			v = fmt.Sprintf("v%d", n)
			if n%3 == 0 {
				v = fmt.Sprintf("v%d%%2Fx", n)
			}
			values[name] = v
		}
		b.WriteString(v)
		template = template[i+j+1:]
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, a, c)
		}
	}
	return ""
}

// extractRouteLists compiles every corpus definition with the gatekiln CLI
// and writes the routes of those it accepts into testdata/routes.
func extractRouteLists(t *testing.T) {
	if _, err := os.Stat(corpusDir); err != nil {
		t.Fatalf("corpus: %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	tmp := t.TempDir()
	cli := filepath.Join(tmp, "gatekiln")
	build := exec.Command("go", "build", "-o", cli, "./cmd/gatekiln")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build gatekiln: %v\n%s", err, out)
	}
	defs, _ := filepath.Glob(filepath.Join(corpusDir, "oas-examples", "*", "*.yaml"))
	defs = append(defs, filepath.Join(corpusDir, "box", "openapi.json"))
	if err := os.RemoveAll("testdata/routes"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("testdata/routes", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, def := range defs {
		name := filepath.Base(filepath.Dir(def)) + "-" + strings.TrimSuffix(strings.TrimSuffix(filepath.Base(def), ".yaml"), ".json")
		out := filepath.Join(tmp, name)
		cmd := exec.Command(cli, "compile", "-o", out, def)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Logf("%s: rejected by the compiler, no routing table: %s", name, strings.TrimSpace(string(msg)))
			continue
		}
		b, err := bundle.Load(filepath.Join(out, "bundle.json"))
		if err != nil {
			t.Fatal(err)
		}
		rl := routeList{Title: b.API.Title, BasePath: b.API.BasePath}
		for _, r := range b.Routes {
			rl.Routes = append(rl.Routes, [2]string{r.Method, r.Path})
		}
		data, _ := json.MarshalIndent(rl, "", " ")
		if err := os.WriteFile(filepath.Join("testdata", "routes", name+".json"), append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
