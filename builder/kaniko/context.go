// Package kaniko renders what an in-cluster Kaniko build needs: the build
// context (a Dockerfile from templates/ and the Bundle, as a tar.gz split
// across ConfigMaps when it is larger than one may hold) and the batch/v1 Job
// that joins the parts and runs the executor. Everything here is a pure
// function of its arguments; the operator creates the objects and reads the
// digest from the executor's termination message.
package kaniko

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"sort"

	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/templates"
)

// Names inside the build context.
const (
	DockerfileName = "Dockerfile"
	BundleName     = "bundle.json"
)

// Dockerfile renders the build's Dockerfile: FROM the runtime base by digest,
// COPY the Bundle, LABEL with the same labels the Direct builder sets.
func Dockerfile(r image.Request) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	labels := image.Labels(r)
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	d := templates.Dockerfile{Base: r.Base.String(), BundlePath: bundle.Path}
	for _, k := range keys {
		d.Labels = append(d.Labels, templates.Label{Key: k, Value: labels[k]})
	}
	return templates.RenderDockerfile(d)
}

// Context renders the build context as a tar.gz: the Dockerfile and
// bundle.json, 0644, root, dated image.Epoch, in that order, so the same
// request gives the same bytes.
func Context(r image.Request) ([]byte, error) {
	df, err := Dockerfile(r)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, f := range []struct {
		name string
		data []byte
	}{{DockerfileName, df}, {BundleName, r.Bundle}} {
		hdr := &tar.Header{
			Name:     f.name,
			Typeflag: tar.TypeReg,
			Mode:     0o644,
			Size:     int64(len(f.data)),
			ModTime:  image.Epoch,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("build context %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("build context %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MaxConfigMapBytes is what the API server accepts in one ConfigMap's data
// and binaryData together.
const MaxConfigMapBytes = 1 << 20

// Split cuts data into consecutive parts of at most max bytes. Joined in
// order they are data again.
func Split(data []byte, max int) ([][]byte, error) {
	if max <= 0 {
		return nil, errors.New("split: part size must be positive")
	}
	if len(data) == 0 {
		return nil, errors.New("split: nothing to split")
	}
	var parts [][]byte
	for off := 0; off < len(data); off += max {
		end := min(off+max, len(data))
		parts = append(parts, data[off:end])
	}
	return parts, nil
}
