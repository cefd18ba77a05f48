// Package image builds Gatekiln's images with go-containerregistry, the way
// ko does: the runtime base image (the static gateway binary on an empty base)
// and, on top of it, the per-API image that adds one layer holding the Bundle.
// Every layer is deterministic — sorted entries, fixed owner, mode and
// modification time — so the same inputs give the same digest.
//
// Building is separate from publishing: Assemble and RuntimeBase are pure and
// return an image index; a Publisher writes it to a registry or an OCI layout.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the modification time of every layer entry and the creation time
// of every image Gatekiln builds. Kaniko's --reproducible uses the same.
var Epoch = time.Unix(0, 0).UTC()

// Entry is one file or directory of a layer.
type Entry struct {
	// Path is absolute: /etc/gatekiln/bundle.json.
	Path string
	// Dir makes the entry a directory; Data is then ignored.
	Dir bool
	// Link makes the entry a symbolic link to Link; Data is then ignored.
	Link string
	Data []byte
	// Mode holds the permission bits (0644 for a file, 0755 for a directory
	// when zero).
	Mode int64
	// UID and GID own the entry (root when zero).
	UID, GID int
}

// NewLayer returns a gzip-compressed OCI layer holding entries ("/" may be
// given as a directory, to state the root's own mode). Missing parent
// directories are added (0755, root). Entries are written sorted by path,
// owned by UID:GID with no user or group names, dated Epoch, so the layer's
// digest depends on nothing but the entries (and the Go toolchain's gzip).
func NewLayer(entries []Entry) (v1.Layer, error) {
	byPath := map[string]Entry{}
	for _, e := range entries {
		clean := path.Clean("/" + e.Path)
		if clean == "/" && !e.Dir {
			return nil, fmt.Errorf("layer entry %q: the root can only be a directory", e.Path)
		}
		if _, dup := byPath[clean]; dup {
			return nil, fmt.Errorf("layer entry %s: given twice", clean)
		}
		e.Path = clean
		byPath[clean] = e
	}
	for p := range byPath {
		for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = Entry{Path: dir, Dir: true}
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, p := range paths {
		e := byPath[p]
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    e.Mode,
			Uid:     e.UID,
			Gid:     e.GID,
			ModTime: Epoch,
			Format:  tar.FormatPAX,
		}
		if e.Dir {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			if p == "/" {
				hdr.Name = "./"
			}
			if hdr.Mode == 0 {
				hdr.Mode = 0o755
			}
		} else if e.Link != "" {
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.Link
			if hdr.Mode == 0 {
				hdr.Mode = 0o777
			}
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.Data))
			if hdr.Mode == 0 {
				hdr.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", p, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, fmt.Errorf("layer entry %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return layerFromTar(raw.Bytes())
}

// layerFromTar compresses once and keeps both forms, so the digest, the diff
// ID and the upload never compress twice.
func layerFromTar(tarBytes []byte) (v1.Layer, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tarBytes); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &memLayer{
		compressed:   gz.Bytes(),
		uncompressed: tarBytes,
		digest:       sha256Hash(gz.Bytes()),
		diffID:       sha256Hash(tarBytes),
	}, nil
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}
}

// memLayer is a layer held in memory in both forms.
type memLayer struct {
	compressed, uncompressed []byte
	digest, diffID           v1.Hash
}

func (l *memLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)     { return int64(len(l.compressed)), nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.uncompressed)), nil
}
func (l *memLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
