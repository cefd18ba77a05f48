// Package compile turns API definition files (Swagger 2.0, OpenAPI 3.0 and
// 3.1) and the Endpoint, RateLimit and Security objects they name into a
// Bundle (what goes into the gateway image) and a Binding (what is mounted
// next to it). It is pure: it reads nothing but its arguments, never the file
// system, the network or an API server, so the operator, the kubectl plugin
// and the CLI all get the same answer from the same inputs.
package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	v1alpha1 "github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// Version is the compiler's version. It is part of the inputs digest: a
// compiler that could produce a different Bundle must change it.
const Version = "0.1.0"

// File is one definition document. The first File of an Input is the root;
// the others are found by the relative paths the $refs use, so Path is
// relative to the root file's directory (the root's own Path is its name).
// Data may be YAML or JSON, optionally gzip'd.
type File struct {
	Path string
	Data []byte
}

// Kinds are the objects of the API's namespace the definition may name, by
// object name, as plain values (the operator and the CLI gather them).
type Kinds struct {
	Namespace string
	// Name is the API object's name; with Namespace it scopes the API's keys
	// in a shared Redis (Binding redis.keyPrefix).
	Name       string
	Endpoints  map[string]v1alpha1.EndpointSpec
	RateLimits map[string]v1alpha1.RateLimitSpec
	Security   map[string]v1alpha1.SecuritySpec
	// Refs maps names used in the definition to object names when they differ.
	Refs *v1alpha1.ObjectRefs
	// Redis is the API's default store for RateLimits with store Redis.
	Redis *v1alpha1.RedisRef
	// TLSSecretRef names a kubernetes.io/tls Secret for the gateway's listener.
	TLSSecretRef *v1alpha1.SecretKeyRef
	// Forwarding is the API's trusted proxies and forwarding fields.
	Forwarding *v1alpha1.ForwardingSpec
}

// Input is everything one compile reads.
type Input struct {
	Files []File
	// Kinds nil is a standalone compile: the Bundle is complete, the Binding
	// empty, and names stay unresolved.
	Kinds *Kinds
	// Version overrides the definition's info.version.
	Version string
}

// Result is what a successful compile produces.
type Result struct {
	Bundle *bundle.Bundle
	// BundleBytes are the Bundle's canonical bytes, as baked into the image.
	BundleBytes []byte
	// BundleDigest is "sha256:<hex>" of BundleBytes.
	BundleDigest string
	// Binding holds the Kinds' values for the names the Bundle uses. Secret
	// values never appear in it, only the names of files holding them.
	Binding *bundle.Binding
	// SecretFiles says, for each file the Binding names, which Secret key to
	// project there (the operator does; see SecretFile).
	SecretFiles []SecretFile
	// Warnings are things the compile read but could not honour.
	Warnings []Problem
}

// Secret file formats.
const (
	// SecretFormatRaw: copy the Secret key's value as it is.
	SecretFormatRaw = ""
	// SecretFormatAPIKeys: render the Secret as "id:sha256hex" lines with
	// RenderAPIKeys (Key empty means every key of the Secret).
	SecretFormatAPIKeys = "apiKeyHashes"
)

// SecretFile maps one Binding file to the Secret key it is projected from.
type SecretFile struct {
	// File is the path relative to the Binding directory.
	File       string `json:"file"`
	SecretName string `json:"secretName"`
	Key        string `json:"key,omitempty"`
	// Format is SecretFormatRaw or SecretFormatAPIKeys.
	Format string `json:"format,omitempty"`
}

// Compile resolves one API definition. On failure the error is Problems,
// listing every problem found, each with its file, JSON pointer and reason.
func Compile(in Input) (*Result, error) {
	c := &compiler{in: in}
	res := c.run()
	if len(c.problems) > 0 {
		c.locate(c.problems)
		sortProblems(c.problems, c.fileOrder)
		return nil, Problems(c.problems)
	}
	c.locate(c.warnings)
	sortProblems(c.warnings, c.fileOrder)
	res.Warnings = c.warnings
	return res, nil
}

// InputsDigest is the digest that names a gateway image: the Bundle, the
// runtime base image and the compiler version, each length-prefixed so that
// no two different triples hash alike.
func InputsDigest(bundleBytes []byte, runtimeBaseDigest, compilerVersion string) string {
	h := sha256.New()
	h.Write([]byte("gatekiln.io/inputs/v1\n"))
	for _, part := range [][]byte{bundleBytes, []byte(runtimeBaseDigest), []byte(compilerVersion)} {
		h.Write([]byte(strconv.Itoa(len(part))))
		h.Write([]byte{':'})
		h.Write(part)
		h.Write([]byte{'\n'})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

type compiler struct {
	in        Input
	fs        fileSet
	order     []*document
	fileOrder map[string]int
	problems  []Problem
	warnings  []Problem

	specVersion string
	doc         *openapi3.T
	// fixed is set when fixSchemas changed the document.
	fixed    bool
	b        *bundle.Bundle
	names    nameUses
	declared declarations
}

func (c *compiler) fail(file, ptr, code, reason string) {
	c.problems = append(c.problems, Problem{File: file, Pointer: ptr, Code: code, Reason: reason})
}

func (c *compiler) warn(file, ptr, code, reason string) {
	c.warnings = append(c.warnings, Problem{File: file, Pointer: ptr, Code: code, Reason: reason})
}

// locate fills in line numbers for problems that have a file and pointer,
// one document at a time (jsonLines reads a document once for all).
func (c *compiler) locate(ps []Problem) {
	done := make([]bool, len(ps))
	for _, d := range c.order {
		var at []int
		var ptrs []string
		for i, p := range ps {
			if !done[i] && p.Line == 0 && p.Pointer != "" && p.File == d.file {
				done[i] = true
				at = append(at, i)
				ptrs = append(ptrs, p.Pointer)
			}
		}
		if len(ptrs) == 0 {
			continue
		}
		for j, line := range d.lines(ptrs) {
			ps[at[j]].Line = line
		}
	}
}

func (c *compiler) run() *Result {
	if !c.decode() || !c.checkRoot() {
		return nil
	}
	if ps := c.fs.checkRefs(c.order); len(ps) > 0 {
		c.problems = append(c.problems, ps...)
		return nil
	}
	if !c.load() {
		return nil
	}
	c.build()
	if len(c.problems) > 0 {
		return nil
	}
	res := &Result{Bundle: c.b}
	if !c.finishBundle(res) {
		return nil
	}
	c.bind(res)
	if len(c.problems) > 0 {
		return nil
	}
	return res
}

// decode parses every file, reporting every file's problems together.
func (c *compiler) decode() bool {
	if len(c.in.Files) == 0 {
		c.fail("", "", CodeInvalidDefinition, "no definition files given")
		return false
	}
	c.fs.docs = make(map[string]*document, len(c.in.Files))
	c.fileOrder = make(map[string]int, len(c.in.Files))
	ok := true
	for i, f := range c.in.Files {
		name := f.Path
		if name == "" {
			name = "input-" + strconv.Itoa(i)
		}
		c.fileOrder[name] = i
		key := cleanKey(name)
		if _, dup := c.fs.docs[key]; dup {
			c.fail(name, "", CodeInvalidDefinition, fmt.Sprintf("%q is supplied twice", key))
			ok = false
			continue
		}
		d, ps := decodeDocument(name, key, f.Data)
		if len(ps) > 0 {
			c.problems = append(c.problems, ps...)
			ok = false
			continue
		}
		c.fs.docs[key] = d
		c.order = append(c.order, d)
		if i == 0 {
			c.fs.root = d
		}
	}
	return ok
}

// checkRoot finds the root's version, makes the scalars OpenAPI wants as
// strings strings (YAML reads `version: 1.0` as a number), and computes every
// document's canonical JSON.
func (c *compiler) checkRoot() bool {
	root := c.fs.root
	m, isMap := root.value.(map[string]any)
	if !isMap {
		c.fail(root.file, "", CodeNoVersion, "not an OpenAPI or Swagger document: the top level is not a mapping")
		return false
	}
	for _, k := range []string{"swagger", "openapi"} {
		if n, ok := m[k].(fmt.Stringer); ok {
			m[k] = n.String()
		}
	}
	if info, ok := m["info"].(map[string]any); ok {
		if n, ok := info["version"].(fmt.Stringer); ok {
			info["version"] = n.String()
		}
	}
	sw, _ := m["swagger"].(string)
	oa, _ := m["openapi"].(string)
	switch {
	case sw == "2.0":
		c.specVersion = sw
	case len(oa) >= 3 && (oa[:3] == "3.0" || oa[:3] == "3.1" || oa[:3] == "3.2"):
		c.specVersion = oa
	case sw != "":
		c.fail(root.file, "/swagger", CodeNoVersion, fmt.Sprintf("swagger %q is not supported: want \"2.0\"", sw))
		return false
	case oa != "":
		c.fail(root.file, "/openapi", CodeNoVersion, fmt.Sprintf("openapi %q is not supported: want 3.0.x or 3.1.x", oa))
		return false
	default:
		c.fail(root.file, "", CodeNoVersion, "neither swagger: \"2.0\" nor openapi: 3.x is set; cannot tell which specification this follows")
		return false
	}
	for _, d := range c.order {
		canon, err := canonicalJSON(d.value)
		if err != nil {
			c.fail(d.file, "", CodeParseError, "cannot encode as JSON: "+err.Error())
			return false
		}
		d.canonical = canon
	}
	return true
}

// sourceKey is a document's key in Bundle.Source: "" for the root, else its
// path relative to the root's directory.
func (c *compiler) sourceKey(d *document) string {
	if d == c.fs.root {
		return ""
	}
	return relPath(path.Dir(c.fs.root.key), d.key)
}

// relPath returns target relative to dir; both are clean slash paths.
func relPath(dir, target string) string {
	if dir == "." {
		return target
	}
	ds, ts := strings.Split(dir, "/"), strings.Split(target, "/")
	i := 0
	for i < len(ds) && i < len(ts)-1 && ds[i] == ts[i] {
		i++
	}
	parts := make([]string, 0, len(ds)-i+len(ts)-i)
	for range ds[i:] {
		parts = append(parts, "..")
	}
	parts = append(parts, ts[i:]...)
	return strings.Join(parts, "/")
}
