// Package imagetest gives image tests their inputs: a Bundle built by hand
// from the gatewayruntime/bundle types, and a runtime base image pushed to a
// test registry.
package imagetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// HostCACerts is the host's CA bundle, which the runtime base image carries.
const HostCACerts = "/etc/ssl/certs/ca-certificates.crt"

// PetstoreOpenAPI is a small OpenAPI 3 document in canonical form.
const PetstoreOpenAPI = `{"components":{"schemas":{"Pet":{"properties":{"id":{"format":"int64","type":"integer"},"name":{"type":"string"}},"required":["id","name"],"type":"object"}}},"info":{"title":"Swagger Petstore","version":"1.0.0"},"openapi":"3.0.0","paths":{"/pets":{"get":{"operationId":"listPets","responses":{"200":{"description":"A list of pets"}}},"post":{"operationId":"createPets","responses":{"201":{"description":"Created"}}}},"/pets/{petId}":{"get":{"operationId":"showPetById","parameters":[{"in":"path","name":"petId","required":true,"schema":{"type":"string"}}],"responses":{"200":{"description":"A pet"}}}}}}`

// Bundle returns canonical Bundle bytes around an OpenAPI document (JSON).
func Bundle(tb testing.TB, title, version string, openapi []byte) []byte {
	tb.Helper()
	b := bundle.Bundle{
		APIVersion: bundle.APIVersion,
		API:        bundle.API{Title: title, Version: version, BasePath: "/v1", SpecVersion: "3.0.0"},
		Source:     bundle.Source{Files: map[string]string{"": digestOf(openapi)}},
		OpenAPI:    json.RawMessage(openapi),
		Routes: []bundle.Route{
			{Method: "GET", Path: "/v1/pets", OperationID: "listPets", UpstreamPath: "/pets", Endpoint: "default", Validation: bundle.Validation{Request: true}},
			{Method: "POST", Path: "/v1/pets", OperationID: "createPets", UpstreamPath: "/pets", Endpoint: "default", Validation: bundle.Validation{Request: true}},
			{Method: "GET", Path: "/v1/pets/{petId}", OperationID: "showPetById", UpstreamPath: "/pets/{petId}", Endpoint: "default", Validation: bundle.Validation{Request: true}},
		},
		Endpoints: map[string]bundle.Endpoint{"default": {URLs: []string{"http://petstore.example/v1"}}},
	}
	data, err := b.Marshal()
	if err != nil {
		tb.Fatalf("bundle: %v", err)
	}
	return data
}

// Petstore is the Bundle tests build most.
func Petstore(tb testing.TB) []byte {
	return Bundle(tb, "Swagger Petstore", "1.0.0", []byte(PetstoreOpenAPI))
}

// InputsDigest stands in for the compiler's digest in tests: any sha256 of
// the bundle and the base will do, the builders only carry it.
func InputsDigest(bundleBytes []byte, base string) string {
	h := sha256.New()
	h.Write(bundleBytes)
	h.Write([]byte(base))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// FakeBinaries writes one small executable-looking file per default platform.
// The runtime base only carries the binary; image tests never run it.
func FakeBinaries(tb testing.TB) []image.Binary {
	tb.Helper()
	dir := tb.TempDir()
	var out []image.Binary
	for _, p := range image.DefaultPlatforms {
		path := filepath.Join(dir, "gatekiln-gateway-"+p.Architecture)
		if err := os.WriteFile(path, []byte("#!gatekiln-gateway for "+p.String()+"\n"), 0o755); err != nil {
			tb.Fatal(err)
		}
		out = append(out, image.Binary{Platform: p, Path: path})
	}
	return out
}

// RuntimeBase assembles a runtime base index from binaries and the host's CA
// certificates.
func RuntimeBase(tb testing.TB, binaries []image.Binary) v1.ImageIndex {
	tb.Helper()
	certs, err := os.ReadFile(HostCACerts)
	if err != nil {
		tb.Fatalf("host CA certificates: %v", err)
	}
	idx, err := image.RuntimeBase(image.RuntimeOptions{Binaries: binaries, CACerts: certs, Version: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	return idx
}

// PushRuntimeBase pushes a runtime base built from fake binaries to
// host/gatekiln/runtime and returns it by digest.
func PushRuntimeBase(tb testing.TB, cfg registry.Config, host string) name.Digest {
	tb.Helper()
	idx := RuntimeBase(tb, FakeBinaries(tb))
	repo, err := cfg.ParseRepository(host + "/gatekiln/runtime")
	if err != nil {
		tb.Fatal(err)
	}
	opts, err := cfg.Remote(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if err := remote.WriteIndex(repo.Tag("test"), idx, opts...); err != nil {
		tb.Fatalf("push runtime base: %v", err)
	}
	d, err := idx.Digest()
	if err != nil {
		tb.Fatal(err)
	}
	return repo.Digest(d.String())
}
