//go:build e2e

package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
)

// nodeIP is the local cluster's node address (hack/cluster/env.sh): Pods
// reach the node's own servers there, as they reach its registry.
const nodeIP = "10.244.0.1"

// freeNodeAddr is a free TCP address on the node IP.
func freeNodeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(nodeIP, "0"))
	if err != nil {
		t.Fatalf("listen on the node IP (is the cluster up?): %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// issuer is a JWT issuer of one environment: its name, its RSA key and the
// key's id.
type issuer struct {
	name, kid string
	key       *rsa.PrivateKey
}

func newIssuer(t *testing.T, name, kid string) *issuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{name: name, kid: kid, key: k}
}

// jwks is the issuer's public key as a JSON Web Key Set.
func (i *issuer) jwks(t *testing.T) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	b, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": i.kid,
		"n": b64(i.key.N.Bytes()), "e": b64(big.NewInt(int64(i.key.E)).Bytes()),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// publicPEM is the issuer's public key as PEM, for a certificate Secret.
func (i *issuer) publicPEM(t *testing.T) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&i.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// token is an RS256 JWT for the petstore audience, valid for an hour.
func (i *issuer) token(t *testing.T) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": i.name, "aud": "petstore", "sub": "bob",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
	})
	tok.Header["kid"] = i.kid
	s, err := tok.SignedString(i.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startProdRegistry runs the production registry (TLS with its own CA,
// htpasswd auth) on the node IP, and tells the node's containerd to trust
// its CA; the kubelet pulls with the credentials of the API's pull Secret.
func startProdRegistry(t *testing.T, root string) *registrytest.Registry {
	t.Helper()
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true, Addr: freeNodeAddr(t)})
	dir := filepath.Join(root, "bin", "cluster", "containerd", "certs.d", reg.Host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	hosts := fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n",
		reg.URL, reg.URL, reg.CACertFile)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	return reg
}

// storage lists every file under the registry's directory with its size:
// equal listings mean nothing was uploaded in between.
func storage(t *testing.T, reg *registrytest.Registry) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(reg.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(reg.Dir, p)
		lines = append(lines, fmt.Sprintf("%s %d", rel, info.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
