package compile

import (
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"
)

// fixSchemas repairs, with a warning each, the two mistakes real definitions
// make most whose intent is unambiguous, so that they compile instead of being
// refused: an OpenAPI 3.0 array schema without items (read as "items of any
// type", as JSON Schema does) and an OpenAPI 3.1 schema that still writes
// exclusiveMinimum/exclusiveMaximum as booleans (rewritten to the 3.1 numeric
// form, which says the same).
func (c *compiler) fixSchemas() {
	is31 := c.doc.IsOpenAPI31OrLater()
	file := c.fs.root.file
	markFixed := func() { c.fixed = true }
	_ = c.doc.WalkSchemas(func(ptr string, ref *openapi3.SchemaRef) error {
		s := ref.Value
		if !is31 && s.Type != nil && s.Type.Is("array") && s.Items == nil {
			s.Items = &openapi3.SchemaRef{Value: &openapi3.Schema{}}
			c.fixed = true
			c.warn(file, ptr, CodeInvalidDefinition, "an array schema without items: read as items of any type")
		}
		if is31 {
			fixBound(&s.ExclusiveMin, &s.Min, markFixed, func(what string) {
				c.warn(file, ptr, CodeInvalidDefinition, fmt.Sprintf("a boolean exclusiveMinimum in OpenAPI 3.1: %s", what))
			})
			fixBound(&s.ExclusiveMax, &s.Max, markFixed, func(what string) {
				c.warn(file, ptr, CodeInvalidDefinition, fmt.Sprintf("a boolean exclusiveMaximum in OpenAPI 3.1: %s", what))
			})
		}
		return nil
	})
}

func fixBound(eb *openapi3.ExclusiveBound, bound **float64, fixed func(), warn func(string)) {
	if eb.Bool == nil {
		return
	}
	fixed()
	switch {
	case *eb.Bool && *bound != nil:
		v := **bound
		*eb = openapi3.ExclusiveBound{Value: &v}
		*bound = nil
		warn(fmt.Sprintf("rewritten as the 3.1 numeric bound %v", v))
	default:
		*eb = openapi3.ExclusiveBound{}
		warn("it bounds nothing here and is dropped")
	}
}
