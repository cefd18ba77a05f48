// Package source reads definition files and kinds from disk for the CLI. It is
// the edge in front of the pure compiler: everything it returns is plain data
// that builder/compile turns into a Bundle without touching the disk again.
package source

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v4"

	"github.com/gatekiln/gatekiln/builder/compile"
)

// rootNames are tried, in order, when a directory is given as the root.
var rootNames = []string{"openapi.yaml", "openapi.yml", "openapi.json", "swagger.yaml", "swagger.yml", "swagger.json"}

// Definition reports whether a file name looks like a definition document:
// YAML or JSON, optionally gzip'd.
func Definition(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".gz")
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".json")
}

// Read returns the definition files the arguments name, root first. Each
// argument is a file or a directory (every definition file under it, hidden
// ones, what is not a regular file and Kubernetes manifests excepted, see
// walk and Manifest). The first argument is the root: a file, or a directory
// holding openapi.yaml (or .yml, .json, or swagger.*, optionally .gz) or a
// single definition file at its top (manifests aside). A file named as an
// argument may be a symbolic link: the user chose it. Paths are relative to
// the root file's directory, slash-separated, without a ".gz" suffix, which
// is how $refs name them. A file larger than compile.MaxDocumentBytes is
// refused.
func Read(args ...string) ([]compile.File, error) {
	if len(args) == 0 {
		return nil, errors.New("no definition files given")
	}
	rootFile, err := findRoot(args[0])
	if err != nil {
		return nil, err
	}
	base := filepath.Dir(rootFile)
	var files []compile.File
	seen := map[string]bool{}
	// walked says p was found in a directory rather than named: a manifest
	// found so is left out.
	add := func(p string, walked bool) error {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if seen[abs] {
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		data, err := readLimited(p)
		if err != nil {
			return err
		}
		if walked && Manifest(data) {
			// Not marked seen: naming it as an argument still brings it.
			return nil
		}
		seen[abs] = true
		name := filepath.ToSlash(rel)
		if strings.HasSuffix(strings.ToLower(name), ".gz") {
			name = name[:len(name)-3]
		}
		files = append(files, compile.File{Path: path.Clean(name), Data: data})
		return nil
	}
	if err := add(rootFile, false); err != nil {
		return nil, err
	}
	for _, arg := range args {
		info, err := os.Stat(arg)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", arg, err)
		}
		if !info.IsDir() {
			if err := add(arg, false); err != nil {
				return nil, err
			}
			continue
		}
		found, err := walk(arg)
		if err != nil {
			return nil, err
		}
		for _, p := range found {
			if err := add(p, true); err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

// findRoot resolves the first argument to the root document's path.
func findRoot(arg string) (string, error) {
	info, err := os.Stat(arg)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", arg, err)
	}
	if !info.IsDir() {
		return arg, nil
	}
	// A root found in a directory is held to walk's rule: regular files only.
	for _, n := range rootNames {
		for _, cand := range []string{n, n + ".gz"} {
			p := filepath.Join(arg, cand)
			if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	entries, err := os.ReadDir(arg)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", arg, err)
	}
	var defs []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") && Definition(e.Name()) {
			// A manifest beside the definition (its kinds, a Secret) is no
			// candidate; one that cannot be read stays one, and Read says why.
			if data, err := readLimited(filepath.Join(arg, e.Name())); err == nil && Manifest(data) {
				continue
			}
			defs = append(defs, e.Name())
		}
	}
	if len(defs) != 1 {
		return "", fmt.Errorf("read %s: cannot tell the root document: name it openapi.yaml, or give the root file first (found %d definition files at the top)", arg, len(defs))
	}
	return filepath.Join(arg, defs[0]), nil
}

// walk lists the definition files under dir, sorted, skipping hidden entries
// and anything that is not a regular file, as `kubectl create configmap
// --from-file=DIR` does (Read then leaves out the manifests among them). A
// symbolic link is not followed: one in a definition's folder may point
// anywhere on this machine (/etc/passwd), and kubectl add would upload what
// it points at; a dangling one is no error.
// Devices and FIFOs are skipped too: reading one may never end.
func walk(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && Definition(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	sort.Strings(out)
	return out, nil
}

// Manifest reports whether data (YAML or JSON, gzip'd or not) holds a
// Kubernetes object: a document whose top level has both apiVersion and kind.
// No OpenAPI or Swagger document, nor a fragment one $refs, looks like that;
// the kinds file, a Secret or a ConfigMap kept beside a definition does.
// Found in a directory, such a file is no part of the definition: kubectl add
// would store it (a Secret's keys too) in a ConfigMap and print it with
// --dry-run -o yaml, and its fingerprint would go into the Bundle, so that
// rotating a secret changed the image. Only the top-level keys are read: a
// value is never resolved, so no parse error can quote one.
func Manifest(data []byte) bool {
	if bytes.HasPrefix(data, gzipMagic) {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return false
		}
		plain, err := io.ReadAll(io.LimitReader(zr, compile.MaxDocumentBytes+1))
		if err != nil {
			return false
		}
		data = plain
	}
	// Most definition files hold neither word: no need to parse them.
	if !bytes.Contains(data, []byte("apiVersion")) || !bytes.Contains(data, []byte("kind")) {
		return false
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		// A document that does not parse is the compiler's to report.
		if err := dec.Decode(&doc); err != nil {
			return false
		}
		if topLevelKeys(&doc, "apiVersion", "kind") {
			return true
		}
	}
}

// topLevelKeys reports whether the document's top-level mapping has every key.
func topLevelKeys(doc *yaml.Node, keys ...string) bool {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return false
	}
	found := 0
	for _, k := range keys {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if kn := n.Content[i]; kn.Kind == yaml.ScalarNode && kn.Value == k {
				found++
				break
			}
		}
	}
	return found == len(keys)
}

// readLimited reads a file, refusing one larger than the compiler accepts
// without reading it all.
func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, compile.MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if len(data) > compile.MaxDocumentBytes {
		return nil, fmt.Errorf("read %s: larger than %d bytes (32 MiB), the limit for one document", p, compile.MaxDocumentBytes)
	}
	if err := checkGzip(p, data); err != nil {
		return nil, err
	}
	return data, nil
}

var gzipMagic = []byte{0x1f, 0x8b}

// checkGzip reads a gzip'd file through, as the compiler will. The compiler
// names a file by the path its $refs use, without ".gz", so a broken stream
// is reported here, under the name the file has on disk. The data itself is
// passed on as it is (kubectl add stores it gzip'd).
func checkGzip(p string, data []byte) error {
	if !bytes.HasPrefix(data, gzipMagic) {
		return nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("read %s: gzip: %w", p, err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(zr, compile.MaxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("read %s: gzip: %w", p, err)
	}
	if n > compile.MaxDocumentBytes {
		return fmt.Errorf("read %s: larger than %d bytes (32 MiB) once decompressed, the limit for one document", p, compile.MaxDocumentBytes)
	}
	return nil
}
