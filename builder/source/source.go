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
// ones and what is not a regular file excepted, see walk). The first argument
// is the root: a file, or a directory holding openapi.yaml (or .yml, .json, or
// swagger.*, optionally .gz) or a single definition file at its top. A file
// named as an argument may be a symbolic link: the user chose it. Paths are
// relative to the root file's directory, slash-separated, without a ".gz"
// suffix, which is how $refs name them. A file larger than
// compile.MaxDocumentBytes is refused.
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
	add := func(p string) error {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if seen[abs] {
			return nil
		}
		seen[abs] = true
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		data, err := readLimited(p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if strings.HasSuffix(strings.ToLower(name), ".gz") {
			name = name[:len(name)-3]
		}
		files = append(files, compile.File{Path: path.Clean(name), Data: data})
		return nil
	}
	if err := add(rootFile); err != nil {
		return nil, err
	}
	for _, arg := range args {
		info, err := os.Stat(arg)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", arg, err)
		}
		if !info.IsDir() {
			if err := add(arg); err != nil {
				return nil, err
			}
			continue
		}
		found, err := walk(arg)
		if err != nil {
			return nil, err
		}
		for _, p := range found {
			if err := add(p); err != nil {
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
// --from-file=DIR` does. A symbolic link is not followed: one in a
// definition's folder may point anywhere on this machine (/etc/passwd), and
// kubectl add would upload what it points at; a dangling one is no error.
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
