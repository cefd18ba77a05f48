package compile

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDocumentLimits(t *testing.T) {
	okDoc := "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n"
	deepJSON := strings.Repeat("[", maxDepth+10) + strings.Repeat("]", maxDepth+10)
	var deepYAML strings.Builder
	deepYAML.WriteString("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\nx-deep:\n")
	for i := range maxDepth + 10 {
		deepYAML.WriteString(strings.Repeat(" ", i+1) + "- \n")
	}
	tests := []struct {
		name   string
		data   []byte
		code   string
		reason string
	}{
		{name: "over 32 MiB", data: append([]byte(okDoc+"#"), bytes.Repeat([]byte("x"), MaxDocumentBytes)...),
			code: CodeTooLarge, reason: "the limit is 33554432 (32 MiB)"},
		{name: "over 32 MiB once gunzipped", data: gzipped(t, append([]byte(okDoc+"#"), bytes.Repeat([]byte("x"), MaxDocumentBytes)...)),
			code: CodeTooLarge, reason: "once decompressed"},
		{name: "broken gzip", data: []byte{0x1f, 0x8b, 0, 1, 2}, code: CodeParseError, reason: "gzip"},
		{name: "deep JSON", data: []byte(deepJSON), code: CodeTooLarge, reason: "nests deeper than 512"},
		{name: "deep YAML", data: []byte(deepYAML.String()), code: CodeTooLarge, reason: "nests deeper than 512"},
		{name: "an anchor that contains itself", data: []byte("openapi: 3.0.3\nx-a: &a [1, *a]\n"), code: CodeParseError, reason: ""},
		{name: "duplicate keys", data: []byte("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\npaths: {}\n"), code: CodeParseError, reason: "duplicate key"},
		{name: "top level is a list", data: []byte("- openapi: 3.0.3\n"), code: CodeNoVersion, reason: "not a mapping"},
		{name: "empty", data: []byte(""), code: CodeNoVersion, reason: "not a mapping"},
		{name: "openapi 4", data: []byte("openapi: 4.0.0\ninfo: {title: t, version: '1'}\npaths: {}\n"), code: CodeNoVersion, reason: `openapi "4.0.0" is not supported`},
		{name: "swagger 1.2", data: []byte("swagger: '1.2'\n"), code: CodeNoVersion, reason: `swagger "1.2" is not supported`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(Input{Files: []File{{Path: "api.yaml", Data: tc.data}}})
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want %s, got %v", tc.code, err)
			}
			if ps[0].Code != tc.code || !strings.Contains(ps[0].Reason, tc.reason) || ps[0].File != "api.yaml" {
				t.Errorf("got %#v, want %s with %q", ps[0], tc.code, tc.reason)
			}
		})
	}
	if _, err := Compile(Input{}); err == nil || !strings.Contains(err.Error(), "no definition files") {
		t.Errorf("no files: %v", err)
	}
}

// YAML features a definition may use: merge keys, aliases within the budget,
// numbers where OpenAPI wants strings.
func TestYAMLFeatures(t *testing.T) {
	withMerge := `openapi: 3.0
info: {title: t, version: 1.0}
x-base: &base {type: object, properties: {id: {type: integer}}}
paths:
  /a:
    get:
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                <<: *base
                description: merged
`
	explicit := `openapi: "3.0"
info: {title: t, version: "1.0"}
x-base: {type: object, properties: {id: {type: integer}}}
paths:
  /a:
    get:
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: object, properties: {id: {type: integer}}, description: merged}
`
	a, err := Compile(Input{Files: []File{{Path: "a.yaml", Data: []byte(withMerge)}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compile(Input{Files: []File{{Path: "b.yaml", Data: []byte(explicit)}}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.BundleBytes, b.BundleBytes) {
		t.Errorf("merge keys and numbers differ from the explicit form:\n%s\n%s", a.BundleBytes[:300], b.BundleBytes[:300])
	}
	if a.Bundle.API.Version != "1.0" || a.Bundle.API.SpecVersion != "3.0" {
		t.Errorf("api %+v", a.Bundle.API)
	}
}

func TestProblemError(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.yaml", Pointer: "/paths/~1x", Line: 3, Reason: "bad"}, "a.yaml: /paths/~1x (line 3): bad"},
		{Problem{File: "a.yaml", Pointer: "/paths/~1x", Reason: "bad"}, "a.yaml: /paths/~1x: bad"},
		{Problem{File: "a.yaml", Line: 3, Reason: "bad"}, "a.yaml: line 3: bad"},
		{Problem{Reason: "bad"}, "bad"},
	} {
		if got := tc.p.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	ps := Problems{{File: "a", Reason: "x"}, {File: "b", Reason: "y"}}
	if got := ps.Error(); got != "2 problems:\n  a: x\n  b: y" {
		t.Errorf("Problems.Error() = %q", got)
	}
	var target Problems
	if !errors.As(error(ps), &target) || len(target) != 2 {
		t.Errorf("errors.As does not find Problems")
	}
}
