package proxy

import (
	"strings"
	"testing"
)

// TestUpstreamURLErrorsQuoteNoCredentials: a Binding's upstream URL is
// refused naming the URL, which is logged and shown by /readyz; credentials
// in it are not.
func TestUpstreamURLErrorsQuoteNoCredentials(t *testing.T) {
	const canary = "s3cr3t-CANARY-proxy"
	for _, raw := range []string{
		"http://user:" + canary + "@backend:8080/",
		"http://user:" + canary + "@backend:8080/%zz",
		"ftp://user:" + canary + "@backend/",
		"http://" + canary + "@/",
	} {
		_, err := parseUpstreamURL(raw)
		if err == nil {
			t.Fatalf("%s: accepted", raw)
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("error quotes the credentials: %v", err)
		}
		if !strings.Contains(err.Error(), "…@") {
			t.Errorf("error does not name the URL (redacted): %v", err)
		}
	}
}
