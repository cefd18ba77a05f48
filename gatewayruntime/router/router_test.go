package router

import (
	"fmt"
	"strings"
	"testing"
)

func mustCompile(t testing.TB, routes ...string) *Router[string] {
	t.Helper()
	var entries []Entry[string]
	for _, r := range routes {
		m, p, _ := strings.Cut(r, " ")
		entries = append(entries, Entry[string]{Method: m, Path: p, Value: r})
	}
	rt, err := Compile(entries)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestMatch(t *testing.T) {
	rt := mustCompile(t,
		"GET /v1/pets",
		"POST /v1/pets",
		"GET /v1/pets/{id}",
		"DELETE /v1/pets/{id}",
		"GET /v1/pets/mine",
		"GET /v1/pets/{id}/toys/{toy}",
		"GET /v1/pets/mine/toys/special",
		"GET /v1/files/{name}.{ext}",
		"GET /v1/files/{name}.json",
		"GET /v1/files/{name}",
		"GET /v1/slash/",
		"PATCH /v1/users/{user}",
		"PROPFIND /v1/dav",
		"OPTIONS /v1/opts",
		"HEAD /v1/heads",
		"GET /",
		"GET /v1/same/{id}/x/{id}",
	)
	tests := []struct {
		method, path string
		status       Status
		want         string
		params       string
		allow        string
	}{
		{"GET", "/v1/pets", Found, "GET /v1/pets", "", ""},
		{"POST", "/v1/pets", Found, "POST /v1/pets", "", ""},
		{"GET", "/v1/pets/42", Found, "GET /v1/pets/{id}", "id=42", ""},
		{"GET", "/v1/pets/mine", Found, "GET /v1/pets/mine", "", ""},
		// The concrete path is chosen first; it has no DELETE, so 405 (OpenAPI picks the path, then the operation).
		{"DELETE", "/v1/pets/mine", MethodNotAllowed, "", "", "GET, HEAD, OPTIONS"},
		{"DELETE", "/v1/pets/7", Found, "DELETE /v1/pets/{id}", "id=7", ""},
		// Backtracking: /pets/mine/toys/x is not under the literal branch's only leaf.
		{"GET", "/v1/pets/mine/toys/ball", Found, "GET /v1/pets/{id}/toys/{toy}", "id=mine,toy=ball", ""},
		{"GET", "/v1/pets/mine/toys/special", Found, "GET /v1/pets/mine/toys/special", "", ""},
		{"GET", "/v1/pets/3/toys/ball", Found, "GET /v1/pets/{id}/toys/{toy}", "id=3,toy=ball", ""},
		{"PUT", "/v1/pets", MethodNotAllowed, "", "", "GET, HEAD, OPTIONS, POST"},
		{"HEAD", "/v1/pets/1", Found, "GET /v1/pets/{id}", "id=1", ""},
		{"HEAD", "/v1/heads", Found, "HEAD /v1/heads", "", ""},
		{"GET", "/v1/heads", MethodNotAllowed, "", "", "HEAD, OPTIONS"},
		{"OPTIONS", "/v1/pets", Options, "", "", "GET, HEAD, OPTIONS, POST"},
		{"OPTIONS", "/v1/opts", Found, "OPTIONS /v1/opts", "", ""},
		{"PROPFIND", "/v1/dav", Found, "PROPFIND /v1/dav", "", ""},
		{"GET", "/v1/dav", MethodNotAllowed, "", "", "OPTIONS, PROPFIND"},
		// Mixed segments: more literal text first, then fewer, then a whole-segment parameter.
		{"GET", "/v1/files/report.json", Found, "GET /v1/files/{name}.json", "name=report", ""},
		{"GET", "/v1/files/report.csv", Found, "GET /v1/files/{name}.{ext}", "name=report,ext=csv", ""},
		{"GET", "/v1/files/a.b.c", Found, "GET /v1/files/{name}.{ext}", "name=a,ext=b.c", ""},
		{"GET", "/v1/files/report", Found, "GET /v1/files/{name}", "name=report", ""},
		{"GET", "/v1/files/.json", Found, "GET /v1/files/{name}", "name=.json", ""},
		// Percent-encoding: decoded per segment; %2F stays inside the segment.
		{"GET", "/v1/p%65ts", Found, "GET /v1/pets", "", ""},
		{"GET", "/v1/pets/a%2Fb", Found, "GET /v1/pets/{id}", "id=a/b", ""},
		{"GET", "/v1/pets/caf%C3%A9", Found, "GET /v1/pets/{id}", "id=café", ""},
		{"GET", "/v1/pets/%zz", BadPath, "", "", ""},
		// A dot segment between encoded slashes: an upstream that decodes %2F
		// and then normalises would land on another path.
		{"GET", "/v1/pets/..%2Fadmin", BadPath, "", "", ""},
		{"GET", "/v1/pets/a%2F..%2F..%2Fadmin", BadPath, "", "", ""},
		{"GET", "/v1/pets/a%2F.", BadPath, "", "", ""},
		{"GET", "/v1/pets/%2e%2e%2fadmin", BadPath, "", "", ""},
		{"GET", "/v1/pets/a..b%2Fc", Found, "GET /v1/pets/{id}", "id=a..b/c", ""},
		// The same with backslashes, raw or encoded: IIS and ASP.NET take
		// "\" for "/". One that makes no dot segment is a value like any.
		{"GET", `/v1/pets/..\admin`, BadPath, "", "", ""},
		{"GET", `/v1/pets/a\..\..\admin`, BadPath, "", "", ""},
		{"GET", `/v1/pets/.\`, BadPath, "", "", ""},
		{"GET", "/v1/pets/..%5Cadmin", BadPath, "", "", ""},
		{"GET", "/v1/pets/a%5c..%5C..;x", BadPath, "", "", ""},
		{"GET", `/v1/pets/a\b%2F..`, BadPath, "", "", ""},
		{"GET", `/v1/pets/a\b`, Found, "GET /v1/pets/{id}", `id=a\b`, ""},
		{"GET", "/v1/pets/a%5Cb", Found, "GET /v1/pets/{id}", `id=a\b`, ""},
		{"GET", `/v1/pets/..\`, BadPath, "", "", ""},
		{"GET", `/v1/pets/\\`, Found, "GET /v1/pets/{id}", `id=\\`, ""},
		// Path parameters: Tomcat and Spring drop ";..." first, so "..;" is "..".
		{"GET", "/v1/pets/..;/admin", BadPath, "", "", ""},
		{"GET", "/v1/pets/..;jsessionid=x", BadPath, "", "", ""},
		{"GET", "/v1/pets/.;x", BadPath, "", "", ""},
		{"GET", "/v1/pets/a%2F..;x", BadPath, "", "", ""},
		{"GET", "/v1/pets/1;v=2", Found, "GET /v1/pets/{id}", "id=1;v=2", ""},
		{"GET", "/v1/pets/%4", BadPath, "", "", ""},
		{"GET", "/v1/pets/%00", BadPath, "", "", ""},
		{"GET", "/v1/pets/../admin", BadPath, "", "", ""},
		{"GET", "/v1/pets/%2e%2E", BadPath, "", "", ""},
		{"GET", "/v1/./pets", BadPath, "", "", ""},
		{"GET", "/v1/pets/.hidden", Found, "GET /v1/pets/{id}", "id=.hidden", ""},
		{"GET", "pets", BadPath, "", "", ""},
		{"GET", "", BadPath, "", "", ""},
		// Trailing slashes and empty segments are significant.
		{"GET", "/v1/pets/", NotFound, "", "", ""},
		{"GET", "/v1/slash/", Found, "GET /v1/slash/", "", ""},
		{"GET", "/v1/slash", NotFound, "", "", ""},
		{"GET", "/v1//pets", NotFound, "", "", ""},
		{"GET", "/v1/pets//toys/x", NotFound, "", "", ""},
		{"GET", "/V1/pets", NotFound, "", "", ""},
		{"GET", "/v1", NotFound, "", "", ""},
		{"GET", "/", Found, "GET /", "", ""},
		{"GET", "/a/b/c/d/e/f/g/h", NotFound, "", "", ""},
		{"PATCH", "/v1/users/u1", Found, "PATCH /v1/users/{user}", "user=u1", ""},
		// A repeated name is one parameter: both positions must agree.
		{"GET", "/v1/same/7/x/7", Found, "GET /v1/same/{id}/x/{id}", "id=7,id=7", ""},
		{"GET", "/v1/same/7/x/8", NotFound, "", "", ""},
	}
	var buf []Param
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res, params := rt.Match(tt.method, tt.path, buf)
			if res.Status != tt.status {
				t.Fatalf("status = %d, want %d", res.Status, tt.status)
			}
			if res.Value != tt.want {
				t.Fatalf("value = %q, want %q", res.Value, tt.want)
			}
			var ps []string
			for _, p := range params {
				ps = append(ps, p.Name+"="+p.Value)
			}
			if got := strings.Join(ps, ","); tt.status == Found && got != tt.params {
				t.Fatalf("params = %q, want %q", got, tt.params)
			}
			if res.Allow != tt.allow && tt.allow != "" {
				t.Fatalf("allow = %q, want %q", res.Allow, tt.allow)
			}
		})
	}
}

func TestLookupForPreflight(t *testing.T) {
	rt := mustCompile(t, "GET /a/{x}", "PUT /a/{x}")
	res, _ := rt.Match("OPTIONS", "/a/1", nil)
	if res.Status != Options {
		t.Fatalf("status = %d", res.Status)
	}
	if v, ok := res.Lookup("PUT"); !ok || v != "PUT /a/{x}" {
		t.Fatalf("Lookup(PUT) = %q, %v", v, ok)
	}
	if _, ok := res.Lookup("POST"); ok {
		t.Fatal("Lookup(POST): want none")
	}
}

func TestCompileRejects(t *testing.T) {
	tests := []struct {
		routes []string
		want   string
	}{
		{[]string{"GET /pets/{id}", "GET /pets/{name}"}, "ambiguous"},
		{[]string{"GET /pets/{id}", "POST /pets/{name}"}, "ambiguous"},
		{[]string{"GET /pets", "GET /pets"}, "duplicate"},
		{[]string{"GET pets"}, "must start with /"},
		{[]string{"GE T /pets"}, "HTTP token"},
		{[]string{"GET /pets/{id"}, "unbalanced {"},
		{[]string{"GET /pets/id}"}, "unbalanced }"},
		{[]string{"GET /pets/{}"}, "bad parameter name"},
		{[]string{"GET /pets/{a}{b}"}, "two parameters"},
		{[]string{"GET /pets/{a}.{a}"}, "twice"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.routes, " | "), func(t *testing.T) {
			var entries []Entry[int]
			for _, r := range tt.routes {
				m, p, _ := strings.Cut(r, " ")
				if r == "GE T /pets" {
					m, p = "GE T", "/pets"
				}
				entries = append(entries, Entry[int]{Method: m, Path: p})
			}
			_, err := Compile(entries)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	rt := mustCompile(t, "GET /v1/pets", "GET /v1/pets/{id}", "GET /v1/pets/{id}/toys")
	buf := make([]Param, 0, 4)
	allocs := testing.AllocsPerRun(100, func() {
		res, _ := rt.Match("GET", "/v1/pets/42/toys", buf)
		if res.Status != Found {
			panic(fmt.Sprint(res.Status))
		}
	})
	if allocs != 0 {
		t.Fatalf("Match allocates %.0f times per call", allocs)
	}
}

func BenchmarkMatch(b *testing.B) {
	rt := mustCompile(b, "GET /v2/pet", "GET /v2/pet/{petId}", "GET /v2/pet/findByStatus", "GET /v2/user/{username}", "GET /v2/store/order/{orderId}")
	buf := make([]Param, 0, 4)
	b.ReportAllocs()
	for b.Loop() {
		rt.Match("GET", "/v2/user/user1", buf)
	}
}

// FuzzRouter checks that matching never panics, that a found route's template
// re-expands with the returned parameters to the decoded request path, and that
// a path containing a dot segment is never found.
func FuzzRouter(f *testing.F) {
	routes := []string{
		"GET /v1/pets", "GET /v1/pets/{id}", "GET /v1/pets/mine", "GET /v1/pets/{id}/toys/{toy}",
		"GET /v1/files/{name}.{ext}", "GET /v1/files/{name}.json", "POST /v1/files/{name}", "GET /v1/slash/", "GET /",
	}
	rt := mustCompile(f, routes...)
	for _, s := range []string{"/v1/pets/1", "/v1/pets/a%2Fb/toys/%41", "/v1/files/a.b.json", "/v1/slash/", "/v1/../x", "//", "/%", "/v1/files/%2e.x"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		res, params := rt.Match(method, path, nil)
		if res.Status == BadPath && strings.HasPrefix(path, "/") {
			// Match scans segments its own way: it refuses only what
			// decodeSegment refuses.
			bad := false
			for _, s := range strings.Split(path[1:], "/") {
				if _, ok := decodeSegment(s); !ok {
					bad = true
				}
			}
			if !bad {
				t.Fatalf("BadPath for %q, whose segments all decode", path)
			}
		}
		if res.Status != Found {
			return
		}
		expanded := expand(res.Template, params)
		var decoded []string
		for _, s := range strings.Split(path[1:], "/") {
			d, ok := decodeSegment(s)
			if !ok {
				t.Fatalf("found %q for a path with a bad segment %q", res.Template, s)
			}
			decoded = append(decoded, d)
		}
		if want := "/" + strings.Join(decoded, "/"); expanded != want {
			t.Fatalf("template %q with %v expands to %q, want %q", res.Template, params, expanded, want)
		}
		for _, p := range params {
			if p.Value == "" {
				t.Fatalf("empty parameter %s", p.Name)
			}
		}
	})
}

// expand substitutes parameters left to right, so a value that itself looks
// like "{name}" is not substituted again.
func expand(template string, params []Param) string {
	var b strings.Builder
	for _, p := range params {
		i := strings.Index(template, "{"+p.Name+"}")
		b.WriteString(template[:i])
		b.WriteString(p.Value)
		template = template[i+len(p.Name)+2:]
	}
	b.WriteString(template)
	return b.String()
}
