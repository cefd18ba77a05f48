package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	yaml "go.yaml.in/yaml/v4"

	v1alpha1 "github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/compile"
)

// ReadKinds reads a YAML stream of gatekiln.io/v1alpha1 objects (Endpoint,
// RateLimit, Security and at most one API) from a file.
func ReadKinds(p string) (*compile.Kinds, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read kinds: %w", err)
	}
	k, err := ParseKinds(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return k, nil
}

type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

// ParseKinds reads a YAML stream of our kinds into the compiler's Kinds. The
// objects must agree on one namespace ("default" when none says). Objects of
// other API groups (a Secret, a ConfigMap) are skipped so that one file can
// hold everything a namespace needs; an unknown field in our kinds is an error.
// An API object contributes its refs, redis and tlsSecretRef.
func ParseKinds(data []byte) (*compile.Kinds, error) {
	k := &compile.Kinds{
		Endpoints:  map[string]v1alpha1.EndpointSpec{},
		RateLimits: map[string]v1alpha1.RateLimitSpec{},
		Security:   map[string]v1alpha1.SecuritySpec{},
	}
	namespace := ""
	haveAPI := false
	ours := 0
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		// Each document is read as a node tree first and its values are
		// resolved only once it is one of ours: the file may hold Secrets,
		// and a value that does not resolve (`password: !!int s3cr3t`) would
		// otherwise be quoted in the error, which the CLI prints. A syntax
		// error names a line, never a value.
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		root := &node
		if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
			root = root.Content[0]
		}
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		if root.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("document %d: not a mapping (a Kubernetes object)", i+1)
		}
		if apiVersion := topLevelString(root, "apiVersion"); apiVersion != v1alpha1.GroupVersion.String() {
			if group, _, _ := strings.Cut(apiVersion, "/"); group == v1alpha1.GroupVersion.Group {
				// One of ours in a version this compiler does not read: it
				// must not vanish into "not found" errors later.
				return nil, fmt.Errorf("document %d (%s %q): apiVersion %q: this gatekiln reads %s",
					i+1, topLevelString(root, "kind"), metadataName(root), apiVersion, v1alpha1.GroupVersion)
			}
			continue
		}
		var doc any
		if err := root.Decode(&doc); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		raw, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		var obj object
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		ours++
		where := fmt.Sprintf("document %d (%s %q)", i+1, obj.Kind, obj.Metadata.Name)
		if obj.Metadata.Name == "" {
			return nil, fmt.Errorf("%s: metadata.name is empty", where)
		}
		ns := obj.Metadata.Namespace
		if ns == "" {
			ns = "default"
		}
		if namespace != "" && ns != namespace {
			return nil, fmt.Errorf("%s: namespace %q, but earlier objects are in %q; give the objects of one namespace", where, ns, namespace)
		}
		namespace = ns
		switch obj.Kind {
		case "Endpoint":
			err = addSpec(k.Endpoints, obj, where)
		case "RateLimit":
			err = addSpec(k.RateLimits, obj, where)
		case "Security":
			err = addSpec(k.Security, obj, where)
		case "API":
			if haveAPI {
				return nil, fmt.Errorf("%s: a second API; give at most one", where)
			}
			haveAPI = true
			var spec v1alpha1.APISpec
			if err := strictUnmarshal(obj.Spec, &spec); err != nil {
				return nil, fmt.Errorf("%s: spec: %w", where, err)
			}
			k.Refs, k.Redis, k.TLSSecretRef, k.Forwarding = spec.Refs, spec.Redis, spec.TLSSecretRef, spec.Forwarding
		default:
			return nil, fmt.Errorf("%s: unknown kind %q (want Endpoint, RateLimit, Security or API)", where, obj.Kind)
		}
		if err != nil {
			return nil, err
		}
	}
	if namespace == "" {
		namespace = "default"
	}
	if ours == 0 {
		// --kinds was given for a reason: a file without a single object of
		// ours is the wrong file.
		return nil, fmt.Errorf("no %s objects (API, Endpoint, RateLimit, Security) in it", v1alpha1.GroupVersion)
	}
	k.Namespace = namespace
	return k, nil
}

// topLevelString is the plain scalar value of a mapping's key, "" when the
// key is absent or holds something else. Nothing else is resolved.
func topLevelString(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k, v := m.Content[i], m.Content[i+1]; k.Kind == yaml.ScalarNode && k.Value == key {
			if v.Kind == yaml.ScalarNode && (v.Tag == "!!str" || v.Tag == "") {
				return v.Value
			}
			return ""
		}
	}
	return ""
}

// metadataName is metadata.name of an object's node, or "".
func metadataName(m *yaml.Node) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k, v := m.Content[i], m.Content[i+1]; k.Kind == yaml.ScalarNode && k.Value == "metadata" && v.Kind == yaml.MappingNode {
			return topLevelString(v, "name")
		}
	}
	return ""
}

func addSpec[T any](m map[string]T, obj object, where string) error {
	if _, dup := m[obj.Metadata.Name]; dup {
		return fmt.Errorf("%s: given twice", where)
	}
	var spec T
	if err := strictUnmarshal(obj.Spec, &spec); err != nil {
		return fmt.Errorf("%s: spec: %w", where, err)
	}
	m[obj.Metadata.Name] = spec
	return nil
}

func strictUnmarshal(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return errors.New("missing")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
