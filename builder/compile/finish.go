package compile

import (
	"bytes"
	"context"
	"fmt"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// finishBundle embeds the resolved OpenAPI document and fixes the Bundle's
// canonical bytes and digest.
func (c *compiler) finishBundle(res *Result) (ok bool) {
	file := c.fs.root.file
	defer func() {
		if r := recover(); r != nil {
			c.fail(file, "", CodeInvalidDefinition, fmt.Sprintf("the OpenAPI library failed on this document: %v", r))
			ok = false
		}
	}()
	if len(c.order) == 1 && c.specVersion != "2.0" && !c.fixed {
		// A single OpenAPI 3 document is already self-contained: its
		// canonical form is the resolved document, and re-encoding what the
		// library read would only cost time.
		c.b.OpenAPI = c.fs.root.canonical
	} else if !c.embedResolved() {
		return false
	}
	data, err := marshalBundle(c.b)
	if err != nil {
		c.fail(file, "", CodeInvalidDefinition, err.Error())
		return false
	}
	res.BundleBytes = data
	res.BundleDigest = sha256Hex(data)
	return true
}

// embedResolved embeds the document as the library holds it: converted from
// Swagger 2.0, repaired, or with the other files' $refs made components.
func (c *compiler) embedResolved() bool {
	file := c.fs.root.file
	if len(c.order) > 1 {
		// One self-contained document: $refs into other files become
		// components of the root, so the gateway needs no other file.
		c.doc.InternalizeRefs(context.Background(), nil)
	}
	raw, err := c.doc.MarshalJSON()
	if err != nil {
		c.fail(file, "", CodeInvalidDefinition, "cannot encode the resolved document: "+err.Error())
		return false
	}
	canon, err := bundle.CanonicalizeJSON(raw)
	if err != nil {
		c.fail(file, "", CodeInvalidDefinition, "cannot encode the resolved document: "+err.Error())
		return false
	}
	c.b.OpenAPI = canon
	return true
}

// marshalBundle returns exactly what Bundle.Marshal does, without
// re-canonicalising the embedded document, which is canonical already and
// most of the bytes: the rest is encoded around a marker that the document is
// then put in place of.
func marshalBundle(b *bundle.Bundle) ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("invalid bundle: %w", err)
	}
	doc := b.OpenAPI
	marker := []byte(`"gatekiln-openapi:` + sha256Hex(doc) + `"`)
	shell := *b
	shell.OpenAPI = marker
	out, err := bundle.Canonical(&shell)
	if err != nil {
		return nil, err
	}
	i := bytes.Index(out, marker)
	if i < 0 || bytes.Count(out, marker) != 1 {
		return b.Marshal()
	}
	res := make([]byte, 0, len(out)-len(marker)+len(doc))
	res = append(res, out[:i]...)
	res = append(res, doc...)
	return append(res, out[i+len(marker):]...), nil
}
