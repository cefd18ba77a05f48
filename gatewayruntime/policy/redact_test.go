package policy

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

const urlCanary = "s3cr3t-CANARY-policy"

// TestSecurityURLsQuoteNoCredentials: the JWKS and introspection URLs are
// named in errors (a rejected Binding is logged) and in the log of a failed
// JWKS fetch, every retry; credentials in them are not.
func TestSecurityURLsQuoteNoCredentials(t *testing.T) {
	bad := "ftp://user:" + urlCanary + "@idp.example/keys"
	if _, err := newJWKSCache(context.Background(), bad, jwksOptions{}, nil, nil); err == nil || strings.Contains(err.Error(), urlCanary) {
		t.Errorf("jwks url error: %v", err)
	}
	if _, err := newIntrospectionScheme(nil, "oauth", "api", &bundle.OAuth2Binding{IntrospectionURL: bad}); err == nil || strings.Contains(err.Error(), urlCanary) {
		t.Errorf("introspection url error: %v", err)
	}

	var buf syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Nothing listens on port 1: the fetch fails and is logged.
	_, err := newJWKSCache(ctx, "http://user:"+urlCanary+"@127.0.0.1:1/keys", jwksOptions{timeout: time.Second},
		slog.New(slog.NewJSONHandler(&buf, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "jwks fetch failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed fetch logged: %s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(buf.String(), urlCanary) {
		t.Errorf("the log quotes the credentials: %s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
