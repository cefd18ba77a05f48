package compile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

func readSample(t *testing.T) []File {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "samples", "petstore", "petstore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return []File{{Path: "petstore.yaml", Data: data}}
}

func petstoreKinds() *Kinds {
	return &Kinds{
		Namespace: "shop",
		Endpoints: map[string]v1alpha1.EndpointSpec{
			"petstore-backend": {URLs: []string{"http://petstore-backend:8080"}, Timeout: &metav1.Duration{Duration: 5 * time.Second}},
		},
		RateLimits: map[string]v1alpha1.RateLimitSpec{
			"petstore-standard": {Requests: 100, Unit: "Minute", Burst: 20, Key: "Consumer", Store: "Local"},
		},
		Security: map[string]v1alpha1.SecuritySpec{
			"petstore-api-key": {Type: v1alpha1.SecurityAPIKey, APIKey: &v1alpha1.APIKeySpec{KeysSecretRef: v1alpha1.SecretKeyRef{Name: "petstore-api-keys"}}},
			"petstore-jwt": {Type: v1alpha1.SecurityJWT, JWT: &v1alpha1.JWTSpec{Issuer: "https://issuer.example.com",
				JWKSURL: "https://issuer.example.com/jwks.json", Audiences: []string{"petstore"}}},
		},
	}
}

func TestSampleStandalone(t *testing.T) {
	res, err := Compile(Input{Files: readSample(t)})
	if err != nil {
		t.Fatal(err)
	}
	b := res.Bundle
	if b.API.BasePath != "/v1" || b.API.Title != "Swagger Petstore" || b.API.Version != "1.0.0" || b.API.SpecVersion != "3.0.3" {
		t.Errorf("api = %+v", b.API)
	}
	type routeKey struct{ method, path, op, endpoint string }
	var got []routeKey
	for _, r := range b.Routes {
		got = append(got, routeKey{r.Method, r.Path, r.OperationID, r.Endpoint})
	}
	want := []routeKey{
		{"GET", "/v1/pets", "listPets", "petstore-backend"},
		{"POST", "/v1/pets", "createPet", "petstore-backend"},
		{"DELETE", "/v1/pets/{petId}", "deletePet", "petstore-backend"},
		{"GET", "/v1/pets/{petId}", "showPetById", "petstore-backend"},
		{"PUT", "/v1/pets/{petId}", "updatePet", "petstore-backend"},
		{"GET", "/v1/status", "status", "petstore-backend"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("routes:\n got %v\nwant %v", got, want)
	}
	byOp := map[string]bundle.Route{}
	for _, r := range b.Routes {
		byOp[r.OperationID] = r
	}
	if s := byOp["listPets"].Security; len(s) != 1 || s[0][0].Name != "petstore-api-key" {
		t.Errorf("listPets security = %v", s)
	}
	if s := byOp["createPet"].Security; len(s) != 1 || s[0][0].Name != "petstore-jwt" {
		t.Errorf("createPet security = %v", s)
	}
	if st := byOp["status"]; st.Security != nil || st.RateLimits != nil {
		t.Errorf("status should be public and unlimited: %+v", st)
	}
	if rl := byOp["listPets"].RateLimits; !reflect.DeepEqual(rl, []string{"petstore-standard"}) {
		t.Errorf("listPets rate limits = %v", rl)
	}
	if byOp["listPets"].Timeout.D() != 10*time.Second || byOp["createPet"].Retries == nil || byOp["createPet"].Retries.Attempts != 0 {
		t.Errorf("timeout/retries not applied: %+v %+v", byOp["listPets"], byOp["createPet"])
	}
	wantSchemes := map[string]bundle.SecurityScheme{
		"petstore-api-key": {Type: bundle.SchemeAPIKey, In: "header", Name: "X-API-Key"},
		"petstore-jwt":     {Type: bundle.SchemeJWT, BearerFormat: "JWT"},
	}
	if !reflect.DeepEqual(b.SecuritySchemes, wantSchemes) {
		t.Errorf("schemes = %+v", b.SecuritySchemes)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %v", res.Warnings)
	}
	// The Bundle round-trips through the gateway's parser.
	parsed, err := bundle.Parse(res.BundleBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed.Routes) != len(b.Routes) {
		t.Errorf("parsed %d routes", len(parsed.Routes))
	}
	if res.BundleDigest != sha256Hex(res.BundleBytes) {
		t.Errorf("digest %s does not match the bytes", res.BundleDigest)
	}
	if res.Binding.APIVersion != bundle.BindingAPIVersion || res.Binding.Endpoints != nil || res.SecretFiles != nil {
		t.Errorf("standalone binding should be empty: %+v %+v", res.Binding, res.SecretFiles)
	}
	if missing := res.Binding.Missing(b); len(missing) == 0 {
		t.Errorf("an empty binding should leave names missing")
	}
}

func TestSampleWithKinds(t *testing.T) {
	res, err := Compile(Input{Files: readSample(t), Kinds: petstoreKinds()})
	if err != nil {
		t.Fatal(err)
	}
	if missing := res.Binding.Missing(res.Bundle); len(missing) != 0 {
		t.Errorf("binding lacks: %v", missing)
	}
	got, err := json.Marshal(res.Binding)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"apiVersion":"gatekiln.io/binding/v1",` +
		`"endpoints":{"petstore-backend":{"urls":["http://petstore-backend:8080"],"timeout":"5s"}},` +
		`"security":{"petstore-api-key":{"apiKey":{"keysFile":"security/petstore-api-key/keys"}},` +
		`"petstore-jwt":{"jwt":{"issuer":"https://issuer.example.com","audiences":["petstore"],"jwksUrl":"https://issuer.example.com/jwks.json"}}},` +
		`"rateLimits":{"petstore-standard":{"requests":100,"period":"1m0s","burst":20,"key":"consumer","store":"local","failureMode":"open"}}}`
	if string(got) != want {
		t.Errorf("binding:\n got %s\nwant %s", got, want)
	}
	wantFiles := []SecretFile{{File: "security/petstore-api-key/keys", SecretName: "petstore-api-keys", Format: SecretFormatAPIKeys}}
	if !reflect.DeepEqual(res.SecretFiles, wantFiles) {
		t.Errorf("secret files = %+v", res.SecretFiles)
	}
	// The Bundle does not depend on the Kinds.
	alone, err := Compile(Input{Files: readSample(t)})
	if err != nil {
		t.Fatal(err)
	}
	if alone.BundleDigest != res.BundleDigest {
		t.Errorf("kinds changed the bundle")
	}
}
