package compile

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func multiFiles() []File {
	return []File{
		{Path: "openapi.yaml", Data: []byte(`openapi: 3.0.3
info: {title: multi, version: "1"}
paths:
  /pets:
    $ref: "paths/pets.yaml"
components:
  schemas:
    Error: {$ref: "../common/error.yaml#/Error"}
`)},
		{Path: "paths/pets.yaml", Data: []byte(`get:
  operationId: listPets
  responses:
    "200":
      description: ok
      content:
        application/json:
          schema: {$ref: "../schemas/pet.yaml#/Pet"}
    default:
      description: error
      content:
        application/json:
          schema: {$ref: "../../common/error.yaml#/Error"}
`)},
		{Path: "schemas/pet.yaml", Data: []byte(`Pet:
  type: object
  properties:
    name: {type: string}
    owner: {$ref: "owner.yaml#/Owner"}
`)},
		{Path: "schemas/owner.yaml", Data: []byte(`Owner:
  type: object
  properties:
    pets: {type: array, items: {$ref: "pet.yaml#/Pet"}}
`)},
		{Path: "../common/error.yaml", Data: []byte(`{"Error": {"type": "object", "properties": {"message": {"type": "string"}}}}`)},
		{Path: "unused/notes.yaml", Data: []byte("title: not referenced\n")},
	}
}

// TestMultiFile resolves $refs between supplied files by relative path, with
// a cycle across two files, and embeds one self-contained document.
func TestMultiFile(t *testing.T) {
	res, err := Compile(Input{Files: multiFiles()})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range res.Bundle.Source.Files {
		keys = append(keys, k)
	}
	want := []string{"", "../common/error.yaml", "paths/pets.yaml", "schemas/owner.yaml", "schemas/pet.yaml", "unused/notes.yaml"}
	if !reflect.DeepEqual(sortedKeys(res.Bundle.Source.Files), want) {
		t.Errorf("source files %v, want %v", keys, want)
	}
	oa := string(res.Bundle.OpenAPI)
	if strings.Contains(oa, ".yaml") {
		t.Errorf("the embedded document still refers to other files: %s", oa)
	}
	// The gateway loads the embedded document on its own.
	doc, err := openapi3.NewLoader().LoadFromData(res.Bundle.OpenAPI)
	if err != nil {
		t.Fatalf("embedded document does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("embedded document is invalid: %v", err)
	}
	if r := routeOf(t, res, "GET", "/pets"); r.OperationID != "listPets" {
		t.Errorf("route %+v", r)
	}
	// The same files under another root directory give the same Bundle.
	moved := multiFiles()
	for i := range moved {
		moved[i].Path = "deep/dir/" + moved[i].Path
	}
	res2, err := Compile(Input{Files: moved})
	if err != nil {
		t.Fatal(err)
	}
	if res2.BundleDigest != res.BundleDigest {
		t.Errorf("moving the files changed the bundle")
	}
}

func TestMultiFileProblems(t *testing.T) {
	tests := []struct {
		name   string
		edit   func([]File) []File
		want   Problem
		reason string
	}{
		{name: "a referenced file is missing",
			edit:   func(fs []File) []File { return append(fs[:3:3], fs[4:]...) },
			want:   Problem{File: "schemas/pet.yaml", Pointer: "/Pet/properties/owner/$ref", Line: 5, Code: CodeExternalRef},
			reason: `refers to "schemas/owner.yaml", which is not among the supplied files`},
		{name: "a fragment that is not there",
			edit: func(fs []File) []File {
				fs[2].Data = []byte("Pet:\n  properties:\n    owner: {$ref: 'owner.yaml#/Nobody'}\n")
				return fs
			},
			want:   Problem{File: "schemas/pet.yaml", Pointer: "/Pet/properties/owner/$ref", Line: 3, Code: CodeUnresolvedRef},
			reason: `"schemas/owner.yaml" has no element #/Nobody`},
		{name: "escaping the supplied set by ..",
			edit: func(fs []File) []File {
				fs[3].Data = []byte("Owner: {$ref: '../../../../etc/passwd'}\n")
				return fs
			},
			want:   Problem{File: "schemas/owner.yaml", Pointer: "/Owner/$ref", Line: 1, Code: CodeExternalRef},
			reason: "not among the supplied files"},
		{name: "an absolute path",
			edit: func(fs []File) []File {
				fs[3].Data = []byte("Owner: {$ref: 'file:///etc/passwd'}\n")
				return fs
			},
			want:   Problem{File: "schemas/owner.yaml", Pointer: "/Owner/$ref", Line: 1, Code: CodeExternalRef},
			reason: "outside the supplied files"},
		{name: "a chain of refs that never ends",
			edit: func(fs []File) []File {
				fs[3].Data = []byte("Owner: {$ref: '#/A'}\nA: {$ref: '#/B'}\nB: {$ref: '#/A'}\n")
				return fs
			},
			want:   Problem{File: "schemas/pet.yaml", Pointer: "/Pet/properties/owner/$ref", Line: 5, Code: CodeInvalidDefinition},
			reason: "cycle of $refs"},
		{name: "a file supplied twice",
			edit: func(fs []File) []File { return append(fs, File{Path: "./schemas//pet.yaml", Data: fs[2].Data}) },
			want: Problem{File: "./schemas//pet.yaml", Code: CodeInvalidDefinition}, reason: "supplied twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(Input{Files: tc.edit(multiFiles())})
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want a problem, got %v", err)
			}
			got := ps[0]
			got.Reason = ""
			if got != tc.want || !strings.Contains(ps[0].Reason, tc.reason) {
				t.Errorf("got %#v\nwant %#v with reason containing %q\nall: %v", ps[0], tc.want, tc.reason, ps)
			}
		})
	}
}

// JSON Schema keywords that a schema library resolves may not name local files.
func TestSchemaFileURIsRefused(t *testing.T) {
	src := `openapi: 3.1.0
info: {title: t, version: "1"}
paths: {}
components:
  schemas:
    A: {$schema: "file:///etc/passwd", type: object}
    B: {$id: "FILE:///etc/", type: string}
    C: {$dynamicRef: "file:///etc/passwd"}
    D: {$schema: "https://json-schema.org/draft/2020-12/schema", $id: "urn:example:d", type: string}
`
	_, ps := compileString(t, src, nil)
	var got []string
	for _, p := range ps {
		if p.Code == CodeExternalRef {
			got = append(got, p.Pointer)
		}
	}
	want := []string{"/components/schemas/A/$schema", "/components/schemas/B/$id", "/components/schemas/C/$dynamicRef"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("refused %v, want %v (all: %v)", got, want, ps)
	}
}

// A pointer may go on through an object that is itself a $ref.
func TestRefThroughRef(t *testing.T) {
	src := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      parameters:
        - {name: id, in: query, schema: {$ref: "#/components/schemas/Alias/properties/id"}}
      responses: {"200": {description: ok}}
components:
  schemas:
    Alias: {$ref: "#/components/schemas/Real"}
    Real: {type: object, properties: {id: {type: integer}}}
`
	if _, ps := compileString(t, src, nil); ps != nil {
		t.Fatal(ps)
	}
	bad := strings.Replace(src, "Alias/properties/id", "Alias/properties/nope", 1)
	if _, ps := compileString(t, bad, nil); len(ps) == 0 || ps[0].Code != CodeUnresolvedRef {
		t.Errorf("a missing element through a $ref: %v", ps)
	}
	// A $ref that goes through itself ends.
	loop := strings.Replace(src, `Alias: {$ref: "#/components/schemas/Real"}`, `Alias: {$ref: "#/components/schemas/Alias/properties/id"}`, 1)
	if _, ps := compileString(t, loop, nil); len(ps) == 0 || ps[0].Code != CodeUnresolvedRef {
		t.Errorf("a $ref through itself: %v", ps)
	}
}
