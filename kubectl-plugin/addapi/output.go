package addapi

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// objects is what the plan writes, in the order apply writes it, for
// --dry-run=client: no owner references (the API's uid is not known yet).
func (p *Plan) objects() []*unstructured.Unstructured {
	out := RenderEndpoints(p.Namespace, p.Endpoints)
	for _, cm := range p.Definition.ConfigMaps {
		u, err := toUnstructured(cm)
		if err != nil {
			// A ConfigMap always converts; this is not reachable with Pack's output.
			panic(err)
		}
		out = append(out, u)
	}
	return append(out, RenderAPI(p.Spec, p.Definition.Refs))
}

// outcome is how a "kind/name …" line words what happened, as kubectl
// does: a client dry run sends nothing, so nothing was "serverside-applied";
// it prints what kubectl create --dry-run=client prints. A server dry run
// did go through server-side apply, and says it persisted nothing.
func (o *Options) outcome() (verb, suffix string) {
	switch o.DryRun {
	case DryRunClient:
		return "created", " (dry run)"
	case DryRunServer:
		return "serverside-applied", " (server dry run)"
	}
	return "serverside-applied", ""
}

// print writes the objects as kubectl does: "kind/name verb" lines, or with
// -o yaml|json a v1 List (one object alone) that `kubectl apply -f -` takes.
// Server-filled managedFields are left out, as kubectl get does by default.
func (o *Options) print(objs []*unstructured.Unstructured) error {
	if o.Output == "" {
		verb, suffix := o.outcome()
		for _, u := range objs {
			fmt.Fprintf(o.Out, "%s/%s %s%s\n", resourceName(u), u.GetName(), verb, suffix)
		}
		return nil
	}
	items := make([]any, 0, len(objs))
	for _, u := range objs {
		c := u.DeepCopy()
		unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
		items = append(items, c.Object)
	}
	var doc any = map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
	if len(items) == 1 {
		doc = items[0]
	}
	return encode(o.Out, o.Output, doc)
}

func encode(w io.Writer, format string, doc any) error {
	var (
		data []byte
		err  error
	)
	if format == "json" {
		data, err = json.MarshalIndent(doc, "", "    ")
		data = append(data, '\n')
	} else {
		data, err = yaml.Marshal(doc)
	}
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = w.Write(data)
	return err
}

func (o *Options) printDeleted(names []string) {
	_, suffix := o.outcome()
	w := o.Out
	if o.Output != "" {
		w = o.ErrOut
	}
	for _, n := range names {
		fmt.Fprintf(w, "%s deleted%s\n", n, suffix)
	}
}

// progressOut keeps -o output machine-readable: progress goes to stderr then.
func (o *Options) progressOut() io.Writer {
	if o.Output != "" {
		return o.ErrOut
	}
	return o.Out
}

// resourceName is kubectl's "configmap" or "api.gatekiln.io".
func resourceName(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	kind := strings.ToLower(gvk.Kind)
	if gvk.Group == "" {
		return kind
	}
	return kind + "." + gvk.Group
}
