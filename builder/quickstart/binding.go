package quickstart

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// Values are what a local Binding is made of besides generated credentials.
type Values struct {
	// Endpoints gives URLs by endpoint name; DefaultURL (the mock) serves
	// every endpoint not named here. An endpoint with neither keeps the
	// definition's default URLs, if it has any.
	Endpoints  map[string][]string
	DefaultURL string
	// APIKeys gives an API key by security scheme name.
	APIKeys map[string]string
	// Generate makes a credential for every scheme that has no value: an API
	// key, a user and password, or a signed JWT with every scope the routes
	// ask of it. Without it, a scheme without a value is left out and the
	// gateway reports it as missing.
	Generate bool
	// Rand and Now make generation reproducible in tests; nil means
	// crypto/rand and time.Now.
	Rand io.Reader
	Now  func() time.Time
}

// Credential is what a client presents for one scheme.
type Credential struct {
	Scheme string
	Type   string
	// In and Name locate an API key (header, query or cookie); Value is the
	// key, the password or the token.
	In, Name, Value string
	// User is the Basic user.
	User string
	// Note says what a client cannot do with this credential locally.
	Note string
}

// Curl renders the credential as curl arguments and, for a query key, the
// query string to append.
func (c Credential) Curl() (args []string, query string) {
	switch c.Type {
	case bundle.SchemeAPIKey:
		switch c.In {
		case "header":
			return []string{"-H", shellQuote(c.Name + ": " + c.Value)}, ""
		case "query":
			return nil, c.Name + "=" + c.Value
		case "cookie":
			return []string{"--cookie", shellQuote(c.Name + "=" + c.Value)}, ""
		}
	case bundle.SchemeBasic:
		return []string{"-u", shellQuote(c.User + ":" + c.Value)}, ""
	case bundle.SchemeJWT, bundle.SchemeOAuth2:
		return []string{"-H", shellQuote("Authorization: Bearer " + c.Value)}, ""
	}
	return nil, ""
}

// Presentable reports whether curl can present the credential over plain HTTP.
func (c Credential) Presentable() bool { return c.Type != bundle.SchemeMTLS && c.Value != "" }

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Local is a Binding for running one Bundle on this machine, with the
// files it names and the credentials a client can use.
type Local struct {
	Binding     *bundle.Binding
	Files       map[string][]byte
	Credentials []Credential
	// RateLimits describes the limits the Binding sets, for people.
	RateLimits []string
}

// Issuer is the iss of the tokens a local Binding signs.
const Issuer = "https://gatekiln.localhost/quickstart"

// localRate is what a rate-limit policy without an inline default allows
// locally: enough never to get in the way of trying an API by hand.
var localRate = bundle.RateLimitBinding{Requests: 1000, Period: bundle.Duration(time.Minute), Key: bundle.KeyClientIP, Store: bundle.StoreLocal}

// NewLocal makes a Binding for b from v: every endpoint the routes use, every
// scheme they need (given or generated values) and every rate-limit policy.
// It writes nothing; Write does.
func NewLocal(b *bundle.Bundle, v Values) (*Local, error) {
	if v.Rand == nil {
		v.Rand = rand.Reader
	}
	if v.Now == nil {
		v.Now = time.Now
	}
	l := &Local{Binding: &bundle.Binding{APIVersion: bundle.BindingAPIVersion}, Files: map[string][]byte{}}
	for name := range v.Endpoints {
		if _, ok := b.Endpoints[name]; !ok {
			return nil, fmt.Errorf("endpoint %q: the definition names no such endpoint (it names: %s)", name, strings.Join(b.EndpointNames(), ", "))
		}
	}
	for name := range v.APIKeys {
		s, ok := b.SecuritySchemes[name]
		switch {
		case !ok:
			// Not quoted: a name the definition does not know may be part
			// of the key itself (SCHEME= forgotten, the key holding '=').
			return nil, fmt.Errorf("api key for a scheme the definition does not have (its apiKey schemes: %s)", listOrNone(apiKeySchemes(b)))
		case s.Type != bundle.SchemeAPIKey:
			return nil, fmt.Errorf("api key for %q: the scheme is %s, not apiKey (the definition's apiKey schemes: %s)", name, s.Type, listOrNone(apiKeySchemes(b)))
		}
	}
	for _, name := range b.EndpointNames() {
		urls := v.Endpoints[name]
		if len(urls) == 0 && v.DefaultURL != "" {
			urls = []string{v.DefaultURL}
		}
		if len(urls) == 0 {
			continue
		}
		if l.Binding.Endpoints == nil {
			l.Binding.Endpoints = map[string]bundle.EndpointBinding{}
		}
		l.Binding.Endpoints[name] = bundle.EndpointBinding{URLs: urls}
	}

	scopes := scopesByScheme(b)
	for _, name := range b.SchemeNames() {
		s := b.SecuritySchemes[name]
		key, given := v.APIKeys[name]
		if !given && !v.Generate {
			continue
		}
		dir := "security/" + fileName(name) + "/"
		cred := Credential{Scheme: name, Type: s.Type}
		var sb bundle.SecurityBinding
		switch s.Type {
		case bundle.SchemeAPIKey:
			if !given {
				k, err := token(v.Rand, "gk_")
				if err != nil {
					return nil, err
				}
				key = k
			}
			keys, err := compile.RenderAPIKeys(map[string][]byte{"quickstart": []byte(key)}, "")
			if err != nil {
				return nil, fmt.Errorf("api key for %q: %w", name, err)
			}
			l.Files[dir+"keys"] = keys
			sb.APIKey = &bundle.APIKeyBinding{KeysFile: dir + "keys"}
			cred.In, cred.Name, cred.Value = s.In, s.Name, key
		case bundle.SchemeBasic:
			pass, err := token(v.Rand, "")
			if err != nil {
				return nil, err
			}
			hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
			if err != nil {
				return nil, fmt.Errorf("basic %q: %w", name, err)
			}
			l.Files[dir+"htpasswd"] = []byte("quickstart:" + string(hash) + "\n")
			sb.Basic = &bundle.BasicBinding{HtpasswdFile: dir + "htpasswd"}
			cred.User, cred.Value = "quickstart", pass
		case bundle.SchemeJWT, bundle.SchemeOAuth2:
			pub, tok, err := signedToken(v.Rand, v.Now(), scopes[name])
			if err != nil {
				return nil, fmt.Errorf("jwt %q: %w", name, err)
			}
			l.Files[dir+"public.pem"] = pub
			sb.JWT = &bundle.JWTBinding{Issuer: Issuer, CertificateFile: dir + "public.pem", Algorithms: []string{"ES256"}}
			cred.Value = tok
		case bundle.SchemeMTLS:
			ca, err := selfSignedCA(v.Rand, v.Now(), name)
			if err != nil {
				return nil, fmt.Errorf("mtls %q: %w", name, err)
			}
			l.Files[dir+"ca.crt"] = ca
			sb.MTLS = &bundle.MTLSBinding{ClientCAFile: dir + "ca.crt"}
			cred.Note = "needs a client certificate over TLS; this local gateway serves plain HTTP, so its routes refuse every request"
		default:
			continue
		}
		if l.Binding.Security == nil {
			l.Binding.Security = map[string]bundle.SecurityBinding{}
		}
		l.Binding.Security[name] = sb
		l.Credentials = append(l.Credentials, cred)
	}

	for _, name := range b.RateLimitNames() {
		if d := b.RateLimits[name].Default; d != nil {
			l.RateLimits = append(l.RateLimits, fmt.Sprintf("%s: %d per %s (the definition's default)", name, d.Requests, period(d.Period)))
			continue
		}
		if l.Binding.RateLimits == nil {
			l.Binding.RateLimits = map[string]bundle.RateLimitBinding{}
		}
		l.Binding.RateLimits[name] = localRate
		l.RateLimits = append(l.RateLimits, fmt.Sprintf("%s: %d per %s per client IP (local)", name, localRate.Requests, period(localRate.Period)))
	}
	return l, nil
}

// apiKeySchemes lists the definition's apiKey schemes, sorted.
func apiKeySchemes(b *bundle.Bundle) []string {
	var out []string
	for _, name := range b.SchemeNames() {
		if b.SecuritySchemes[name].Type == bundle.SchemeAPIKey {
			out = append(out, name)
		}
	}
	return out
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// period says "minute" for a minute and "1m30s" for odd periods.
func period(d bundle.Duration) string {
	switch time.Duration(d) {
	case time.Second:
		return "second"
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return time.Duration(d).String()
}

// Write puts binding.json and the files it names into dir.
func (l *Local) Write(dir string) error {
	data, err := l.Binding.Marshal()
	if err != nil {
		return fmt.Errorf("binding: %w", err)
	}
	files := map[string][]byte{bundle.BindingFile: data}
	for k, v := range l.Files {
		files[k] = v
	}
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("binding %s: %w", n, err)
		}
		if err := os.WriteFile(p, files[n], 0o600); err != nil {
			return fmt.Errorf("binding %s: %w", n, err)
		}
	}
	return nil
}

// scopesByScheme lists, per scheme, every scope any route asks of it.
func scopesByScheme(b *bundle.Bundle) map[string][]string {
	out := map[string][]string{}
	for _, r := range b.Routes {
		for _, alt := range r.Security {
			for _, s := range alt {
				for _, sc := range s.Scopes {
					if !slices.Contains(out[s.Name], sc) {
						out[s.Name] = append(out[s.Name], sc)
					}
				}
			}
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// fileName keeps a scheme name usable as one path element.
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, strings.TrimLeft(s, "."))
}

func token(r io.Reader, prefix string) (string, error) {
	b := make([]byte, 24)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("generate a credential: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// signedToken makes a P-256 key and a token it signs, valid for a day.
func signedToken(r io.Reader, now time.Time, scopes []string) (pubPEM []byte, tok string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), r)
	if err != nil {
		return nil, "", err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, "", err
	}
	claims := jwt.MapClaims{
		"iss": Issuer,
		"sub": "quickstart",
		"iat": now.Unix(),
		"exp": now.Add(24 * time.Hour).Unix(),
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok, err = t.SignedString(key)
	if err != nil {
		return nil, "", err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), tok, nil
}

func selfSignedCA(r io.Reader, now time.Time, name string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), r)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gatekiln quickstart " + name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(r, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
