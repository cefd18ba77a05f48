package kaniko_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/image/imagetest"
	"github.com/gatekiln/gatekiln/builder/kaniko"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	baseDigest   = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	inputsDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func request(t *testing.T, registry string, bundleBytes []byte) image.Request {
	t.Helper()
	base, err := name.NewDigest(registry + "/gatekiln/runtime@" + baseDigest)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(registry + "/apis/petstore")
	if err != nil {
		t.Fatal(err)
	}
	return image.Request{
		Bundle:       bundleBytes,
		InputsDigest: inputsDigest,
		API:          "shop/petstore",
		Version:      "1.0.0",
		Repository:   repo,
		Base:         base,
	}
}

func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestGoldenContext(t *testing.T) {
	req := request(t, "registry.example", imagetest.Petstore(t))
	df, err := kaniko.Dockerfile(req)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "Dockerfile.golden", df)

	ctx, err := kaniko.Context(req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := kaniko.Context(req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ctx, again) {
		t.Fatal("the build context is not reproducible")
	}
	golden(t, "context.golden", listing(t, ctx, map[string][]byte{kaniko.DockerfileName: df, kaniko.BundleName: req.Bundle}))
}

// listing describes a tar.gz entry by entry and checks each file's content.
func listing(t *testing.T, tgz []byte, want map[string][]byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[hdr.Name]; !ok || !bytes.Equal(w, data) {
			t.Errorf("context entry %s: unexpected content", hdr.Name)
		}
		fmt.Fprintf(&out, "%s mode=%o uid=%d gid=%d mtime=%d size=%d sha256=%x\n",
			hdr.Name, hdr.Mode, hdr.Uid, hdr.Gid, hdr.ModTime.Unix(), hdr.Size, sha256.Sum256(data))
	}
	return out.Bytes()
}

func TestGoldenJob(t *testing.T) {
	owner := &metav1.OwnerReference{
		APIVersion: "gatekiln.io/v1alpha1", Kind: "API", Name: "petstore", UID: "0b7c6a2e-8f3d-4c1a-9e5b-2d4f6a8c0e1f",
		Controller: new(true), BlockOwnerDeletion: new(true),
	}
	tests := []struct {
		name   string
		golden string
		req    image.Request
		opts   kaniko.Options
		// parts is how many ConfigMaps; with MaxPartBytes it is computed.
		parts int
	}{
		{
			name:   "fits one configmap, defaults",
			golden: "job-single.golden.yaml",
			req:    request(t, "registry.example", imagetest.Petstore(t)),
			opts:   kaniko.Options{Name: "petstore-build-222222222222", Namespace: "shop"},
			parts:  1,
		},
		{
			name:   "split, private registry with CA, credentials, owner, resources",
			golden: "job-split.golden.yaml",
			req:    request(t, "registry.internal:5443", imagetest.Bundle(t, "Swagger Petstore", "1.0.0", noise(4096))),
			opts: kaniko.Options{
				Name:               "petstore-build-222222222222",
				Namespace:          "shop",
				Labels:             map[string]string{"gatekiln.io/api": "petstore"},
				Owner:              owner,
				ExecutorImage:      "registry.internal:5443/kaniko/executor:v1.24.0",
				JoinImage:          "registry.internal:5443/kaniko/executor:v1.24.0-debug",
				DockerConfigSecret: "registry-push",
				RegistryCASecret:   "registry-ca",
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
				},
				BackoffLimit:            new(int32(0)),
				ActiveDeadlineSeconds:   new(int64(300)),
				TTLSecondsAfterFinished: new(int32(600)),
				ServiceAccountName:      "gatekiln-build",
				MaxPartBytes:            1024,
			},
		},
		{
			name:   "plain http registry",
			golden: "job-insecure.golden.yaml",
			req:    request(t, "registry.local:5000", imagetest.Petstore(t)),
			opts:   kaniko.Options{Name: "petstore-build-222222222222", Namespace: "shop", Insecure: []string{"registry.local:5000"}},
			parts:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := kaniko.Render(tt.req, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tt.opts.MaxPartBytes > 0 {
				tt.parts = (len(b.Context) + tt.opts.MaxPartBytes - 1) / tt.opts.MaxPartBytes
			}
			if len(b.ConfigMaps) != tt.parts {
				t.Fatalf("%d ConfigMaps, want %d", len(b.ConfigMaps), tt.parts)
			}
			var joined []byte
			for _, cm := range b.ConfigMaps {
				for _, v := range cm.BinaryData {
					if len(v) > kaniko.MaxConfigMapBytes || (tt.opts.MaxPartBytes > 0 && len(v) > tt.opts.MaxPartBytes) {
						t.Fatalf("ConfigMap %s holds %d bytes", cm.Name, len(v))
					}
					joined = append(joined, v...)
				}
			}
			if !bytes.Equal(joined, b.Context) {
				t.Fatal("the ConfigMaps do not join into the context")
			}
			var doc bytes.Buffer
			for _, obj := range append(objects(b.ConfigMaps), b.Job) {
				y, err := yaml.Marshal(obj)
				if err != nil {
					t.Fatal(err)
				}
				doc.WriteString("---\n")
				doc.Write(y)
			}
			golden(t, tt.golden, doc.Bytes())
		})
	}
}

func objects(cms []corev1.ConfigMap) []any {
	out := make([]any, 0, len(cms))
	for i := range cms {
		out = append(out, &cms[i])
	}
	return out
}

func TestRenderRefusesBadOptions(t *testing.T) {
	req := request(t, "registry.example", imagetest.Petstore(t))
	tests := []struct {
		name    string
		opts    kaniko.Options
		wantErr string
	}{
		{name: "bad name", opts: kaniko.Options{Name: "Bad_Name", Namespace: "ns"}, wantErr: `name "Bad_Name"`},
		{name: "name too long", opts: kaniko.Options{Name: strings.Repeat("a", 250), Namespace: "ns"}, wantErr: "longer than"},
		{name: "no namespace", opts: kaniko.Options{Name: "b"}, wantErr: "namespace: empty"},
		{name: "part too large", opts: kaniko.Options{Name: "b", Namespace: "ns", MaxPartBytes: 2 << 20}, wantErr: "maxPartBytes"},
		{name: "CA key without secret", opts: kaniko.Options{Name: "b", Namespace: "ns", RegistryCAKey: "x"}, wantErr: "registryCAKey"},
		{name: "owner without uid", opts: kaniko.Options{Name: "b", Namespace: "ns", Owner: &metav1.OwnerReference{Kind: "API", Name: "a"}}, wantErr: "owner"},
		{name: "bad label", opts: kaniko.Options{Name: "b", Namespace: "ns", Labels: map[string]string{"a": "has space"}}, wantErr: "label a=has space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kaniko.Render(req, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	bad := req
	bad.Base = name.Digest{}
	if _, err := kaniko.Render(bad, kaniko.Options{Name: "b", Namespace: "ns"}); err == nil {
		t.Fatal("a request without a base digest was accepted")
	}
}

func TestSplit(t *testing.T) {
	data := []byte("0123456789")
	tests := []struct {
		max  int
		want []string
	}{
		{max: 10, want: []string{"0123456789"}},
		{max: 100, want: []string{"0123456789"}},
		{max: 4, want: []string{"0123", "4567", "89"}},
		{max: 5, want: []string{"01234", "56789"}},
		{max: 1, want: strings.Split("0123456789", "")},
	}
	for _, tt := range tests {
		parts, err := kaniko.Split(data, tt.max)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range parts {
			got = append(got, string(p))
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("Split(max %d) = %q, want %q", tt.max, got, tt.want)
		}
	}
	if _, err := kaniko.Split(data, 0); err == nil {
		t.Error("max 0 accepted")
	}
	if _, err := kaniko.Split(nil, 5); err == nil {
		t.Error("empty data accepted")
	}
}

func TestDockerfileQuotesLabels(t *testing.T) {
	req := request(t, "registry.example", imagetest.Petstore(t))
	req.API = `we"ird\$HOME`
	df, err := kaniko.Dockerfile(req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), `LABEL "gatekiln.io/api"="we\"ird\\\$HOME"`) {
		t.Fatalf("label not quoted for a Dockerfile:\n%s", df)
	}
	req.API = "two\nlines"
	if _, err := kaniko.Dockerfile(req); err == nil {
		t.Fatal("a label with a line break was accepted")
	}
}

// noise is an OpenAPI document that does not compress well, so a small
// MaxPartBytes splits the context into several parts.
func noise(n int) []byte {
	h := sha256.Sum256([]byte("seed"))
	var b strings.Builder
	b.WriteString(`{"openapi":"3.0.0","x-noise":"`)
	for b.Len() < n {
		h = sha256.Sum256(h[:])
		fmt.Fprintf(&b, "%x", h)
	}
	b.WriteString(`"}`)
	return []byte(b.String())
}

func TestImageFromTermination(t *testing.T) {
	req := request(t, "registry.example", imagetest.Petstore(t))
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		name, msg, want, wantErr string
	}{
		{name: "digest", msg: digest, want: "registry.example/apis/petstore@" + digest},
		{name: "digest with newline", msg: digest + "\n", want: "registry.example/apis/petstore@" + digest},
		{name: "log tail on failure", msg: "error building image: UNAUTHORIZED", wantErr: "UNAUTHORIZED"},
		{name: "empty", msg: "", wantErr: "no digest"},
		{name: "long log is cut", msg: strings.Repeat("x", 2000) + " the end", wantErr: "the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kaniko.ImageFromTermination(req, tt.msg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || len(err.Error()) > 700 {
					t.Fatalf("error = %v, want it to contain %q, short", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
