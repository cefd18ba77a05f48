package policy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

// apiKeyScheme checks an API key sent where the securityScheme says (header,
// query or cookie) against sha256 digests from the Binding's keys file. The
// key's id is the consumer identity.
type apiKeyScheme struct {
	realm, in, name string
	// keys is indexed by digest. The lookup's timing depends only on the digest
	// of what the client sent, which tells an attacker nothing about a valid key
	// (that would need a sha256 preimage); the decision itself is a
	// constant-time comparison with the stored digest.
	keys map[[sha256.Size]byte]apiKey
}

type apiKey struct {
	p      *principal
	digest [sha256.Size]byte
}

func newAPIKeyScheme(env filter.Env, name, realm string, def bundle.SecurityScheme, kb *bundle.APIKeyBinding) (*apiKeyScheme, error) {
	switch def.In {
	case "header", "query", "cookie":
	default:
		return nil, fmt.Errorf("apiKey in %q: want header, query or cookie", def.In)
	}
	if def.Name == "" {
		return nil, errors.New("apiKey needs a name")
	}
	data, err := readBindingFile(env, kb.KeysFile)
	if err != nil {
		return nil, err
	}
	keys, err := parseAPIKeys(data, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kb.KeysFile, err)
	}
	s := &apiKeyScheme{realm: realm, in: def.In, name: def.Name, keys: keys}
	if def.In == "header" {
		s.name = http.CanonicalHeaderKey(def.Name)
	}
	return s, nil
}

// parseAPIKeys reads "id:sha256hex" lines; blank lines and # comments are skipped.
func parseAPIKeys(data []byte, scheme string) (map[[sha256.Size]byte]apiKey, error) {
	keys := map[[sha256.Size]byte]apiKey{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, digest, ok := strings.Cut(line, ":")
		id, digest = strings.TrimSpace(id), strings.TrimSpace(digest)
		if !ok || id == "" {
			return nil, fmt.Errorf("line %d: want id:sha256hex", n)
		}
		raw, err := hex.DecodeString(digest)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("line %d (id %s): want 64 hex digits of sha256", n, id)
		}
		if seen[id] {
			return nil, fmt.Errorf("line %d: id %s appears twice", n, id)
		}
		seen[id] = true
		d := [sha256.Size]byte(raw)
		keys[d] = apiKey{p: &principal{identity: filter.Identity{Scheme: scheme, Subject: id}}, digest: d}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	return keys, nil
}

func (s *apiKeyScheme) checksScopes() bool { return false }

func (s *apiKeyScheme) challenge(*authError) string {
	return fmt.Sprintf(`APIKey realm=%q, in=%q, name=%q`, s.realm, s.in, s.name)
}

func (s *apiKeyScheme) authenticate(r *http.Request) (*principal, *authError) {
	key := s.presented(r)
	if key == "" {
		return nil, missing(fmt.Sprintf("send an API key in the %s %s", s.in, s.name))
	}
	sum := sha256.Sum256([]byte(key))
	k := s.keys[sum]
	if subtle.ConstantTimeCompare(k.digest[:], sum[:]) != 1 {
		return nil, invalid("unknown_key", "the API key is not valid")
	}
	return k.p, nil
}

// location says where the key travels: in is header, query or cookie.
func (s *apiKeyScheme) location() (in, name string) { return s.in, s.name }

// strip removes every copy of the key from r, leaving the rest of the
// request as the client sent it: other query parameters keep their order
// and encoding, other cookies their values.
func (s *apiKeyScheme) strip(r *http.Request) {
	switch s.in {
	case "header":
		r.Header.Del(s.name)
	case "query":
		if r.URL.RawQuery != "" {
			r.URL.RawQuery = withoutQueryParam(r.URL.RawQuery, s.name)
		}
	case "cookie":
		withoutCookie(r.Header, s.name)
	}
}

// withoutQueryParam returns raw without the parameters whose unescaped name
// is name (as url.ParseQuery would read them, so a percent-encoded name does
// not slip through).
func withoutQueryParam(raw, name string) string {
	var kept []string
	removed := false
	for part := range strings.SplitSeq(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil && uk == name || k == name {
			removed = true
			continue
		}
		kept = append(kept, part)
	}
	if !removed {
		return raw
	}
	return strings.Join(kept, "&")
}

// withoutCookie removes the cookie called name from every Cookie field of h.
func withoutCookie(h http.Header, name string) {
	fields := h["Cookie"]
	if len(fields) == 0 {
		return
	}
	var out []string
	for _, f := range fields {
		var kept []string
		for pair := range strings.SplitSeq(f, ";") {
			pair = strings.TrimSpace(pair)
			if n, _, _ := strings.Cut(pair, "="); pair == "" || strings.TrimSpace(n) == name {
				continue
			}
			kept = append(kept, pair)
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, "; "))
		}
	}
	if len(out) == 0 {
		h.Del("Cookie")
		return
	}
	h["Cookie"] = out
}

func (s *apiKeyScheme) presented(r *http.Request) string {
	switch s.in {
	case "header":
		return r.Header.Get(s.name)
	case "query":
		return r.URL.Query().Get(s.name)
	case "cookie":
		if c, err := r.Cookie(s.name); err == nil {
			return c.Value
		}
	}
	return ""
}
