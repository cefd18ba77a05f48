package quickstart

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// canary is a secret value no output may carry.
const canary = "s3cr3t-CANARY-run"

// TestRunQuotesNoKey: `gatekiln run` prints its error. A malformed --api-key
// (the scheme forgotten, or a base64 key whose '=' padding reads as
// SCHEME=KEY) must be named without its value: the value is, or holds, a key.
func TestRunQuotesNoKey(t *testing.T) {
	for _, tc := range []struct {
		name, arg, want string
	}{
		{"no scheme", canary, "--api-key (the 2nd one): want SCHEME=KEY"},
		{"empty scheme", "=" + canary, "--api-key (the 2nd one): want SCHEME=KEY"},
		{"padding only after '='", canary + "=", "--api-key (the 2nd one): want SCHEME=KEY"},
		{"padding read as a key", canary + "==", "api key for a scheme the definition does not have (its apiKey schemes: petstore-api-key)"},
		{"a scheme of another type", "petstore-jwt=" + canary, `api key for "petstore-jwt": the scheme is`},
		{"not a hash", "petstore-api-key=sha256:" + canary, `api key for "petstore-api-key"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := Run(context.Background(), RunOptions{Files: []string{samplePath}, Mock: true,
				APIKeys: []string{"petstore-api-key=fine", tc.arg},
				Serve:   ServeOptions{Addr: "127.0.0.1:0", Out: &out, Err: &errOut}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error with %q", err, tc.want)
			}
			for what, s := range map[string]string{"error": err.Error(), "stdout": out.String(), "stderr": errOut.String()} {
				if strings.Contains(s, canary) {
					t.Errorf("%s holds the key: %s", what, s)
				}
			}
		})
	}
}

// TestRunQuotesNoURLCredentials: an --endpoint URL with user info is refused
// (the gateway would refuse it, printing it whole), and no message quotes
// the credentials.
func TestRunQuotesNoURLCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, arg, want string
	}{
		{"user info", "petstore-backend=https://user:" + canary + "@backend:8443", "--endpoint petstore-backend=https://…@backend:8443: the URL holds user info"},
		{"token", "petstore-backend=http://" + canary + "@backend", "the URL holds user info"},
		{"another scheme", "petstore-backend=ftp://user:" + canary + "@backend", "--endpoint petstore-backend=ftp://…@backend: not an http:// or https:// URL"},
		{"no name", "https://user:" + canary + "@backend", `--endpoint "https://…@backend": want NAME=VALUE`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Run(context.Background(), RunOptions{Files: []string{samplePath}, Endpoints: []string{tc.arg},
				Serve: ServeOptions{Addr: "127.0.0.1:0", Out: &out, Err: &out}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error()+out.String(), canary) {
				t.Errorf("the credentials are quoted: %v\n%s", err, out.String())
			}
		})
	}
}
