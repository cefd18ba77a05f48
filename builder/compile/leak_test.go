package compile

import (
	"bytes"
	"strings"
	"testing"

	v1alpha1 "github.com/gatekiln/gatekiln/apis/v1alpha1"
)

// canary is a secret value no output may carry.
const canary = "s3cr3t-CANARY-compile"

// TestCredentialsInURLs: a password in an upstream URL would be baked into
// the image (an inline URL is in the Bundle) or copied into the Binding
// ConfigMap (an Endpoint's), and the gateway refuses such a URL quoting it
// whole. The compiler refuses it first, and neither its problems nor its
// warnings (an API's status, the CLI's output) quote the credentials.
func TestCredentialsInURLs(t *testing.T) {
	def := func(ext string) []File {
		return []File{{Path: "openapi.yaml", Data: []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
` + ext + `
paths:
  /a:
    get: {responses: {"200": {description: ok}}}
`)}}
	}
	endpoint := func(urls ...string) *Kinds {
		return &Kinds{Namespace: "shop", Endpoints: map[string]v1alpha1.EndpointSpec{"backend": {URLs: urls}}}
	}
	for _, tc := range []struct {
		name  string
		files []File
		kinds *Kinds
		// wantErr: refused; otherwise compiled, maybe with a warning.
		wantErr bool
		want    string
	}{
		{"inline URL with a password", def(`x-gatekiln-endpoint: {urls: ["https://user:` + canary + `@backend:8443"]}`), nil, true,
			`x-gatekiln-endpoint.urls: "https://…@backend:8443" holds user info`},
		{"inline URL with a token", def(`x-gatekiln-endpoint: {urls: ["http://` + canary + `@backend"]}`), nil, true, "holds user info"},
		{"declared endpoint", def(`x-gatekiln-endpoints: {b: {urls: ["http://u:` + canary + `@b"]}}
x-gatekiln-endpoint: b`), nil, true, "holds user info"},
		{"inline URL of another scheme", def(`x-gatekiln-endpoint: {urls: ["ftp://user:` + canary + `@backend"]}`), nil, true,
			`"ftp://…@backend" is not an absolute http(s) URL`},
		{"inline URL that does not parse", def(`x-gatekiln-endpoint: {urls: ["https://user:` + canary + `@backend:port/%zz"]}`), nil, true,
			"is not an absolute http(s) URL"},
		{"Endpoint object", def(`x-gatekiln-endpoint: backend`), endpoint("http://backend:8080", "https://user:"+canary+"@backend:8443"), true,
			`Endpoint "backend": urls[1] holds user info`},
		{"Endpoint object, user info that does not parse", def(`x-gatekiln-endpoint: backend`), endpoint("https://user:" + canary + "@backend:x/"), true,
			`Endpoint "backend": urls[0] holds user info`},
		{"server URL that does not parse", def(`servers: [{url: "https://user:` + canary + `@api.example:port/v1"}]`), nil, false,
			`server URL "https://…@api.example:port/v1" cannot be parsed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Compile(Input{Files: tc.files, Kinds: tc.kinds})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Compile error %v, want an error: %t", err, tc.wantErr)
			}
			var text string
			if err != nil {
				text = err.Error()
			} else {
				for _, w := range res.Warnings {
					text += w.Error() + "\n"
				}
				binding, merr := res.Binding.Marshal()
				if merr != nil {
					t.Fatal(merr)
				}
				if bytes.Contains(binding, []byte(canary)) {
					t.Errorf("binding.json holds the credentials: %s", binding)
				}
			}
			if !strings.Contains(text, tc.want) {
				t.Errorf("got %q, want it to say %q", text, tc.want)
			}
			if strings.Contains(text, canary) {
				t.Errorf("the credentials are quoted: %s", text)
			}
		})
	}
}

// TestBundleHoldsNoBindingValue: the Bundle (the image, and the inputs
// digest that names it) is the definition's alone. Whatever the kinds say,
// secrets' names and keys included, it is the same bytes: rotating a Secret,
// or naming another, never builds a new image.
func TestBundleHoldsNoBindingValue(t *testing.T) {
	files := []File{{Path: "openapi.yaml", Data: []byte(bindDoc)}}
	alone, err := Compile(Input{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	k := fullKinds()
	res, err := Compile(Input{Files: files, Kinds: k})
	if err != nil {
		t.Fatal(err)
	}
	other := fullKinds()
	other.Security["key"] = v1alpha1.SecuritySpec{Type: v1alpha1.SecurityAPIKey,
		APIKey: &v1alpha1.APIKeySpec{KeysSecretRef: v1alpha1.SecretKeyRef{Name: canary, Key: canary}}}
	other.Redis.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: canary}
	res2, err := Compile(Input{Files: files, Kinds: other})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Result{res, res2} {
		if !bytes.Equal(r.BundleBytes, alone.BundleBytes) {
			t.Errorf("the Bundle depends on the kinds:\n%s\nwant\n%s", r.BundleBytes, alone.BundleBytes)
		}
	}
	if bytes.Contains(res2.BundleBytes, []byte(canary)) {
		t.Error("the Bundle names a Secret")
	}
}
