package imagetest

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TreeEntry is one path of an image's flattened file system.
type TreeEntry struct {
	Path     string
	Type     byte
	Mode     int64
	UID, GID int
	Size     int64
	ModTime  int64
	Linkname string
	SHA256   string
}

func (e TreeEntry) String() string {
	return fmt.Sprintf("%s type=%c mode=%o uid=%d gid=%d size=%d mtime=%d link=%q sha256=%s",
		e.Path, e.Type, e.Mode, e.UID, e.GID, e.Size, e.ModTime, e.Linkname, e.SHA256)
}

// Tree flattens img's layers (whiteouts applied) into sorted entries, so two
// images built differently can be compared file by file.
func Tree(img v1.Image) ([]TreeEntry, error) {
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	var out []TreeEntry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		e := TreeEntry{
			Path:     path.Clean("/" + hdr.Name),
			Type:     hdr.Typeflag,
			Mode:     hdr.Mode & 0o7777,
			UID:      hdr.Uid,
			GID:      hdr.Gid,
			Size:     hdr.Size,
			ModTime:  hdr.ModTime.Unix(),
			Linkname: hdr.Linkname,
		}
		if hdr.Typeflag == tar.TypeReg {
			h := sha256.New()
			if _, err := io.Copy(h, tr); err != nil {
				return nil, err
			}
			e.SHA256 = hex.EncodeToString(h.Sum(nil))
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// ReadFile returns the content of path in img's flattened file system.
func ReadFile(img v1.Image, file string) ([]byte, error) {
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	want := path.Clean("/" + file)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s: not in the image", file)
		}
		if err != nil {
			return nil, err
		}
		if path.Clean("/"+hdr.Name) == want {
			return io.ReadAll(tr)
		}
	}
}
