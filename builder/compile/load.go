package compile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

// ValidationOptions are the checks a definition must pass. Examples are not
// checked against their schemas (real definitions are full of stale examples,
// and the gateway never serves them); patterns are, since the gateway
// validates requests with Go's regexp and a pattern it cannot compile is a
// request it cannot validate.
func ValidationOptions() []openapi3.ValidationOption {
	return []openapi3.ValidationOption{
		openapi3.EnableMultiError(),
		openapi3.DisableExamplesValidation(),
		openapi3.DisableSchemaDefaultsValidation(),
	}
}

// newLoader returns a kin-openapi loader that can read only the supplied files.
func (c *compiler) newLoader() *openapi3.Loader {
	loader := openapi3.NewLoader()
	loader.Context = context.Background()
	loader.ReadFromURIFunc = func(_ *openapi3.Loader, location *url.URL) ([]byte, error) {
		return c.fs.readFile(location)
	}
	return loader
}

// load resolves the root document's $refs (Swagger 2.0 converted first) and
// validates it, turning the library's errors into located problems.
func (c *compiler) load() (ok bool) {
	root := c.fs.root
	defer func() {
		// The library is not ours; a panic on a hostile document must become a
		// problem, not take the operator down.
		if r := recover(); r != nil {
			c.fail(root.file, "", CodeInvalidDefinition, fmt.Sprintf("the OpenAPI library failed on this document: %v", r))
			ok = false
		}
	}()
	location := &url.URL{Path: root.key}
	data := root.canonical
	if c.specVersion == "2.0" {
		var doc2 openapi2.T
		if err := json.Unmarshal(data, &doc2); err != nil {
			c.fail(root.file, "", CodeInvalidDefinition, "not a valid Swagger 2.0 document: "+err.Error())
			return false
		}
		doc3, err := openapi2conv.ToV3WithLoader(&doc2, c.newLoader(), location)
		if err != nil {
			c.fail(root.file, "", CodeInvalidDefinition, "cannot convert Swagger 2.0 to OpenAPI 3: "+err.Error())
			return false
		}
		if data, err = json.Marshal(doc3); err != nil {
			c.fail(root.file, "", CodeInvalidDefinition, "cannot convert Swagger 2.0 to OpenAPI 3: "+err.Error())
			return false
		}
	}
	doc, err := c.loadDoc(data, location)
	if err != nil {
		c.fail(root.file, "", CodeInvalidDefinition, "cannot load the definition: "+err.Error())
		return false
	}
	c.doc = doc
	if c.fs.mayNeedFix {
		c.fixSchemas()
	}
	if !c.checkRoutes() {
		return false
	}
	if err := doc.Validate(context.Background(), ValidationOptions()...); err != nil {
		var me openapi3.MultiError
		if !errors.As(err, &me) {
			me = openapi3.MultiError{err}
		}
		for _, e := range me {
			ptr := errorPointer(e)
			if c.specVersion == "2.0" {
				ptr = swagger2Pointer(ptr)
			}
			c.fail(root.file, ptr, CodeInvalidDefinition, errorReason(e))
		}
		return false
	}
	return true
}

// loadDoc reads the (canonical JSON) root document and resolves its $refs.
// The library reads every document with its YAML parser, for line origins
// the compiler does not use: for the 1.7 MB box definition that parse
// allocated 130 MB and set the compile's peak heap, which the operator pays
// for each API it reconciles. A document that refers to no other file
// (checkRefs has seen every $ref) is decoded as the JSON it is instead; one
// that does not decode goes the library's way, whose error says where.
func (c *compiler) loadDoc(data []byte, location *url.URL) (*openapi3.T, error) {
	loader := c.newLoader()
	doc := &openapi3.T{}
	if len(c.order) > 1 || !readJSON || doc.UnmarshalJSON(data) != nil {
		return loader.LoadFromDataWithPath(data, location)
	}
	if err := loader.ResolveRefsIn(doc, location); err != nil {
		return nil, err
	}
	return doc, nil
}

// readJSON enables loadDoc's JSON decoding (a test compares both ways).
var readJSON = true

// swagger2Pointer maps a pointer into the converted OpenAPI 3 document back
// to where the same thing is written in the Swagger 2.0 source.
func swagger2Pointer(ptr string) string {
	for from, to := range map[string]string{
		"/components/schemas/":         "/definitions/",
		"/components/securitySchemes/": "/securityDefinitions/",
		"/components/parameters/":      "/parameters/",
		"/components/requestBodies/":   "/parameters/",
		"/components/responses/":       "/responses/",
	} {
		if rest, ok := strings.CutPrefix(ptr, from); ok {
			return to + rest
		}
	}
	return ptr
}

var componentSections = map[string]string{
	"schema": "schemas", "parameter": "parameters", "header": "headers",
	"request body": "requestBodies", "response": "responses", "security scheme": "securitySchemes",
	"example": "examples", "link": "links", "callback": "callbacks",
}

// errorPointer reads the context wrappers kin-openapi puts around a
// validation error (section, path, operation, component) into a JSON pointer,
// as far as they go.
func errorPointer(err error) string {
	var undefined *openapi3.SecurityRequirementSchemeUndefinedError
	if errors.As(err, &undefined) && undefined.JSONPointer != "" {
		return undefined.JSONPointer
	}
	var toks []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch w := e.(type) { //nolint:errorlint // the chain is walked one link at a time
		case *openapi3.SectionValidationError:
			switch w.Section {
			case "external docs":
				toks = append(toks, "externalDocs")
			default:
				toks = append(toks, w.Section)
			}
		case *openapi3.PathValidationError:
			toks = append(toks, w.Path)
		case *openapi3.OperationValidationError:
			toks = append(toks, strings.ToLower(w.Method))
		case *openapi3.WebhookValidationError:
			toks = append(toks, w.Name)
		case *openapi3.ComponentValidationError:
			if s, ok := componentSections[w.Section]; ok {
				toks = append(toks, s, w.Name)
			}
		}
	}
	if len(toks) == 0 {
		return ""
	}
	return pointer(toks...)
}

// errorReason is the message under the context wrappers errorPointer has
// turned into a pointer, so the reason does not repeat the location.
func errorReason(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch e.(type) { //nolint:errorlint // the chain is walked one link at a time
		case *openapi3.SectionValidationError, *openapi3.PathValidationError,
			*openapi3.OperationValidationError, *openapi3.WebhookValidationError,
			*openapi3.ComponentValidationError:
			continue
		}
		return e.Error()
	}
	return err.Error()
}
