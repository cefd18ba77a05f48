package compile

import (
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
	data, err := c.b.Marshal()
	if err != nil {
		c.fail(file, "", CodeInvalidDefinition, err.Error())
		return false
	}
	res.BundleBytes = data
	res.BundleDigest = sha256Hex(data)
	return true
}
