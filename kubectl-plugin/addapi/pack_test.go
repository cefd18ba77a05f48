package addapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/compile"
)

// noise is incompressible text: gzip cannot shrink it much.
func noise(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return b
}

func TestPack(t *testing.T) {
	small := []byte("openapi: 3.0.3\n")
	for _, c := range []struct {
		name    string
		files   []compile.File
		wantCMs int
		// per file: stored as binary?
		binary map[string]bool
		err    string
	}{
		{name: "one small file stays plain", files: []compile.File{{Path: "petstore.yaml", Data: small}},
			wantCMs: 1, binary: map[string]bool{"petstore.yaml": false}},
		{name: "large text is gzip'd", files: []compile.File{{Path: "big.json", Data: bytes.Repeat([]byte("{\"a\":1}\n"), 50_000)}},
			wantCMs: 1, binary: map[string]bool{"big.json": true}},
		{name: "already gzip'd stays as it is", files: []compile.File{{Path: "x.yaml", Data: gz(t, small)}},
			wantCMs: 1, binary: map[string]bool{"x.yaml": true}},
		{name: "not UTF-8 is binary", files: []compile.File{{Path: "x.yaml", Data: []byte{0xff, 0xfe, 'a'}}},
			wantCMs: 1, binary: map[string]bool{"x.yaml": true}},
		// 64-symbol noise gzips to about 3/4 of its size: the root and two
		// files fill the first ConfigMap, the third goes to a second one.
		{name: "files that do not fit one ConfigMap are split", files: []compile.File{
			{Path: "openapi.yaml", Data: small},
			{Path: "a/one.yaml", Data: noise(1, 600_000)},
			{Path: "a/two.yaml", Data: noise(2, 600_000)},
			{Path: "b/three.yaml", Data: noise(3, 600_000)},
		}, wantCMs: 2, binary: map[string]bool{"openapi.yaml": false, "a/one.yaml": true, "a/two.yaml": true, "b/three.yaml": true}},
		{name: "one file too large for a ConfigMap even gzip'd", files: []compile.File{{Path: "huge.yaml", Data: noise(4, 1_500_000)}},
			err: "huge.yaml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := Pack("petstore", "shop", c.files)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one naming %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(d.ConfigMaps) != c.wantCMs || len(d.Refs) != c.wantCMs {
				t.Fatalf("%d configmaps, %d refs; want %d", len(d.ConfigMaps), len(d.Refs), c.wantCMs)
			}
			got := unpack(t, d)
			if len(got) != len(c.files) {
				t.Fatalf("unpacked %d files, want %d", len(got), len(c.files))
			}
			for i, f := range c.files {
				u := got[i]
				if u.path != f.Path {
					t.Errorf("file %d: path %q, want %q (root first, order kept)", i, u.path, f.Path)
				}
				if u.binary != c.binary[f.Path] {
					t.Errorf("%s: binary = %v, want %v", f.Path, u.binary, c.binary[f.Path])
				}
				plain := u.data
				if u.binary && bytes.HasPrefix(u.data, gzipMagic) {
					plain = gunzip(t, u.data)
				}
				if orig := f.Data; bytes.HasPrefix(orig, gzipMagic) {
					plain, orig = u.data, f.Data
					if !bytes.Equal(plain, orig) {
						t.Errorf("%s: a gzip'd file must be stored as it is", f.Path)
					}
				} else if !bytes.Equal(plain, orig) {
					t.Errorf("%s: content differs after packing", f.Path)
				}
			}
			for i, cm := range d.ConfigMaps {
				size := 0
				for k, v := range cm.Data {
					size += len(k) + len(v)
				}
				for k, v := range cm.BinaryData {
					size += len(k) + len(v)
				}
				if size > 1<<20 {
					t.Errorf("configmap %d holds %d bytes, over 1 MiB", i, size)
				}
				if cm.Immutable == nil || !*cm.Immutable || cm.Labels[LabelAPI] != "petstore" || cm.Namespace != "shop" {
					t.Errorf("configmap %d: immutable %v, labels %v, namespace %q", i, cm.Immutable, cm.Labels, cm.Namespace)
				}
			}
		})
	}
}

func TestPackNamesFollowContent(t *testing.T) {
	a := []compile.File{{Path: "openapi.yaml", Data: []byte("a")}}
	b := []compile.File{{Path: "openapi.yaml", Data: []byte("b")}}
	da, _ := Pack("x", "ns", a)
	da2, _ := Pack("x", "ns", a)
	db, _ := Pack("x", "ns", b)
	if da.Refs[0] != da2.Refs[0] {
		t.Errorf("the same files got different ConfigMap names: %v, %v", da.Refs, da2.Refs)
	}
	if da.Refs[0] == db.Refs[0] {
		t.Errorf("different files got the same ConfigMap name %v", da.Refs[0])
	}
	if !strings.HasPrefix(da.Refs[0].Name, "x-definition-") {
		t.Errorf("name %q", da.Refs[0].Name)
	}
}

func TestConfigMapKey(t *testing.T) {
	for in, want := range map[string]string{
		"petstore.yaml":          "petstore.yaml",
		"schemas/pet.yaml":       "schemas_pet.yaml",
		"../common/errors.yaml":  "_._common_errors.yaml",
		"a b/c:d.json":           "a_b_c_d.json",
		strings.Repeat("x", 300): strings.Repeat("x", 240),
	} {
		if got := configMapKey(in); got != want {
			t.Errorf("configMapKey(%q) = %q, want %q", in, got, want)
		}
	}
	taken := map[string]bool{"a_b.yaml": true}
	if got := uniqueKey("a_b.yaml", taken); got != "2-a_b.yaml" {
		t.Errorf("uniqueKey = %q", got)
	}
}

type unpacked struct {
	path   string
	data   []byte
	binary bool
}

// unpack reads a Definition back the way the operator reads ConfigMaps.
func unpack(t *testing.T, d *Definition) []unpacked {
	t.Helper()
	var out []unpacked
	for i, cm := range d.ConfigMaps {
		if d.Refs[i].Name != cm.Name {
			t.Fatalf("ref %d names %s, configmap is %s", i, d.Refs[i].Name, cm.Name)
		}
		paths := map[string]string{}
		if raw := cm.Annotations[v1alpha1.AnnotationFilePaths]; raw != "" {
			if err := json.Unmarshal([]byte(raw), &paths); err != nil {
				t.Fatal(err)
			}
		}
		var ks []string
		if i == 0 {
			ks = append(ks, cm.Annotations[v1alpha1.AnnotationRootKey])
		}
		var rest []string
		for k := range cm.Data {
			rest = append(rest, k)
		}
		for k := range cm.BinaryData {
			rest = append(rest, k)
		}
		sort.Strings(rest)
		for _, k := range rest {
			if i == 0 && k == ks[0] {
				continue
			}
			ks = append(ks, k)
		}
		for _, k := range ks {
			p := k
			if m, ok := paths[k]; ok {
				p = m
			}
			if v, ok := cm.BinaryData[k]; ok {
				out = append(out, unpacked{p, v, true})
			} else {
				out = append(out, unpacked{p, []byte(cm.Data[k]), false})
			}
		}
	}
	return out
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
