package addapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/compile"
)

// Labels on every definition ConfigMap: which API it belongs to (so that a
// later run finds the ones it replaces) and who wrote it.
const (
	LabelAPI       = "gatekiln.io/api"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	FieldManager   = "kubectl-add"
)

// Sizes. The API server refuses a ConfigMap whose keys and values exceed
// 1 MiB; each ConfigMap is filled to at most configMapBudget so its keys and
// metadata fit beside the values. A file up to plainLimit that is UTF-8 text
// stays readable in data; anything larger (or binary, or already gzip'd) is
// stored gzip'd in binaryData, which the compiler reads as it is.
const (
	configMapBudget = 1000 << 10
	plainLimit      = 128 << 10
)

// annotationBudget bounds the file-paths annotation of one ConfigMap: the API
// server refuses an object whose annotations exceed 256 KiB, and the paths of
// thousands of files in subdirectories run past that long before their data
// fills a ConfigMap. The rest is left for the root-key annotation.
const annotationBudget = 250 << 10

// MaxStoredFileBytes is the most one file may take in a ConfigMap, gzip'd
// when large: a file is never split across ConfigMaps. The help states it.
const MaxStoredFileBytes = configMapBudget

// Definition is a definition's files packed into ConfigMaps, the first
// holding the root file, and the API's spec.definition that names them.
type Definition struct {
	ConfigMaps []*corev1.ConfigMap
	Refs       []v1alpha1.ConfigMapKeyRef
}

// entry is one file as it will be stored.
type entry struct {
	key, path string
	data      []byte
	binary    bool
}

// Pack stores files (root first, as builder/source returns them) in
// ConfigMaps of namespace for the API api. The ConfigMaps are named
// <api>-definition-<hash>[-N], the hash covering every file's path and bytes:
// a changed definition gets new ConfigMaps and a new spec.definition, so the
// API's generation changes with it and the operator never compiles a new
// definition against an old spec or the reverse. They are immutable, and the
// old ones are deleted once the API names the new ones. Pack is pure.
func Pack(api, namespace string, files []compile.File) (*Definition, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("no definition files")
	}
	entries := make([]entry, 0, len(files))
	keys := map[string]bool{}
	for _, f := range files {
		e, err := storeEntry(f)
		if err != nil {
			return nil, err
		}
		e.key = uniqueKey(configMapKey(f.Path), keys)
		keys[e.key] = true
		entries = append(entries, e)
	}

	base := api + "-definition-" + contentHash(files)
	var groups [][]entry
	size, annotated := 0, 0
	for _, e := range entries {
		n := len(e.key) + len(e.data)
		if n > configMapBudget {
			return nil, fmt.Errorf("definition file %s is %d bytes gzip'd; a ConfigMap holds at most 1 MiB, so one file must compress below %d bytes",
				e.path, len(e.data), configMapBudget)
		}
		a := pathAnnotationBytes(e)
		if len(groups) == 0 || size+n > configMapBudget || annotated+a > annotationBudget {
			groups = append(groups, nil)
			size, annotated = 0, 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], e)
		size += n
		annotated += a
	}

	d := &Definition{}
	immutable := true
	for i, g := range groups {
		name := base
		if i > 0 {
			name += "-" + strconv.Itoa(i+1)
		}
		cm := &corev1.ConfigMap{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{
				Name:      name,
				Namespace: namespace,
				Labels:    map[string]string{LabelAPI: api, LabelManagedBy: FieldManager},
			},
			Immutable: &immutable,
		}
		paths := map[string]string{}
		for _, e := range g {
			if e.binary {
				if cm.BinaryData == nil {
					cm.BinaryData = map[string][]byte{}
				}
				cm.BinaryData[e.key] = e.data
			} else {
				if cm.Data == nil {
					cm.Data = map[string]string{}
				}
				cm.Data[e.key] = string(e.data)
			}
			if e.key != e.path {
				paths[e.key] = e.path
			}
		}
		annotations := map[string]string{}
		if i == 0 {
			annotations[v1alpha1.AnnotationRootKey] = g[0].key
		}
		if len(paths) > 0 {
			raw, err := json.Marshal(paths)
			if err != nil {
				return nil, err
			}
			annotations[v1alpha1.AnnotationFilePaths] = string(raw)
		}
		cm.Annotations = annotations
		d.ConfigMaps = append(d.ConfigMaps, cm)
		d.Refs = append(d.Refs, v1alpha1.ConfigMapKeyRef{Name: name})
	}
	return d, nil
}

// pathAnnotationBytes is what e adds to the file-paths annotation (JSON
// `"key":"path",`), 0 when its key is its path.
func pathAnnotationBytes(e entry) int {
	if e.key == e.path {
		return 0
	}
	k, _ := json.Marshal(e.key)
	p, _ := json.Marshal(e.path)
	return len(k) + len(p) + 2
}

var gzipMagic = []byte{0x1f, 0x8b}

func storeEntry(f compile.File) (entry, error) {
	e := entry{path: f.Path}
	switch {
	case bytes.HasPrefix(f.Data, gzipMagic):
		e.data, e.binary = f.Data, true
	case len(f.Data) <= plainLimit && utf8.Valid(f.Data):
		e.data = f.Data
	default:
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return e, err
		}
		if _, err := zw.Write(f.Data); err != nil {
			return e, fmt.Errorf("gzip %s: %w", f.Path, err)
		}
		if err := zw.Close(); err != nil {
			return e, fmt.Errorf("gzip %s: %w", f.Path, err)
		}
		e.data, e.binary = buf.Bytes(), true
	}
	return e, nil
}

var notInKey = regexp.MustCompile(`[^-._a-zA-Z0-9]`)

// configMapKey turns a file path into a legal ConfigMap key: "/" and other
// characters keys cannot hold become "_", a leading ".." is escaped, and the
// key is cut to 253 characters. The path itself goes in the
// gatekiln.io/file-paths annotation whenever the two differ.
func configMapKey(p string) string {
	k := notInKey.ReplaceAllString(p, "_")
	if len(k) >= 2 && k[:2] == ".." {
		k = "_" + k[1:]
	}
	if k == "." || k == "" {
		k = "_"
	}
	if len(k) > 240 {
		k = k[len(k)-240:]
	}
	return k
}

func uniqueKey(k string, taken map[string]bool) string {
	if !taken[k] {
		return k
	}
	for i := 2; ; i++ {
		c := strconv.Itoa(i) + "-" + k
		if !taken[c] {
			return c
		}
	}
}

// contentHash is 10 hex digits of sha256 over every file's path and bytes,
// length-prefixed so that no two file sets hash alike.
func contentHash(files []compile.File) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s\n%d:", len(f.Path), f.Path, len(f.Data))
		h.Write(f.Data)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))[:10]
}
