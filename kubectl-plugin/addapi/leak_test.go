package addapi

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// canary is a secret value no output may carry.
const canary = "s3cr3t-CANARY-addapi"

// TestDryRunLeavesOutSecrets: a definition directory holding a Secret
// manifest (alone, or in the kinds file beside the definition) must not have
// it stored in a definition ConfigMap: --dry-run=client -o yaml|json would
// print the Secret's keys, and a real run would copy them into a ConfigMap
// anyone who reads ConfigMaps can read.
func TestDryRunLeavesOutSecrets(t *testing.T) {
	def, err := os.ReadFile(petstore(t))
	if err != nil {
		t.Fatal(err)
	}
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: petstore-api-keys}\nstringData:\n  alice: " + canary + "\n"
	for _, tc := range []struct {
		name   string
		files  map[string]string
		output string
	}{
		{"secret.yaml, yaml", map[string]string{"secret.yaml": secret}, "yaml"},
		{"secret.json, json", map[string]string{"deploy/secret.json": `{"apiVersion":"v1","kind":"Secret","data":{"alice":"` + canary + `"}}`}, "json"},
		{"kinds file with a Secret", map[string]string{"kinds.yaml": "apiVersion: gatekiln.io/v1alpha1\nkind: Endpoint\nmetadata: {name: petstore-backend}\nspec: {urls: [\"http://b\"]}\n---\n" + secret}, "yaml"},
		{"names only", map[string]string{"secret.yaml": secret}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"openapi.yaml": string(def)}
			for k, v := range tc.files {
				files[k] = v
			}
			for name, data := range files {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			srv := listen(t)
			var out, errOut bytes.Buffer
			o := &Options{Name: "petstore", Files: []string{dir}, DryRun: DryRunClient, Output: tc.output,
				Config: srv.config(t, "shop", ""), IOStreams: genericiooptions.IOStreams{Out: &out, ErrOut: &errOut}}
			if err := o.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			for what, s := range map[string]string{"stdout": out.String(), "stderr": errOut.String()} {
				if strings.Contains(s, canary) {
					t.Errorf("%s holds the Secret's value:\n%s", what, s)
				}
			}
			if tc.output != "" && !strings.Contains(out.String(), "openapi.yaml") {
				t.Errorf("the definition is not in the output:\n%s", out.String())
			}
		})
	}
}

// TestEndpointQuotesNoCredentials: an --endpoint URL with user info is
// refused (the Endpoint object and -o yaml would carry it, and the gateway
// refuses it), and no message quotes the credentials.
func TestEndpointQuotesNoCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, arg, want string
	}{
		{"user info", "petstore-backend=https://user:" + canary + "@backend:8443", `--endpoint "petstore-backend=https://…@backend:8443": the URL holds user info`},
		{"token", "petstore-backend=http://" + canary + "@backend", "the URL holds user info"},
		{"another scheme", "petstore-backend=ftp://u:" + canary + "@backend", `"ftp://…@backend" is not an http:// or https:// URL`},
		{"no name", "https://user:" + canary + "@backend", `--endpoint "https://…@backend"`},
		{"a bad name", "Back_End=https://user:" + canary + "@backend", `--endpoint "Back_End=https://…@backend": name "Back_End"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEndpoints([]string{tc.arg})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseEndpoints = %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("the credentials are quoted: %v", err)
			}
		})
	}
}
