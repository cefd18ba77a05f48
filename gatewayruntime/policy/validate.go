package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
)

const (
	// DefaultMaxValidatedBody bounds a request body that validation reads into
	// memory when the route states no limit.
	DefaultMaxValidatedBody = 8 << 20
	// maxValidatedResponse bounds a response buffered for validation; a larger
	// one is passed on unvalidated (and counted).
	maxValidatedResponse = 8 << 20
	// maxFieldErrors bounds the errors listed in one problem.
	maxFieldErrors = 20
)

// validationFactory validates requests (and, when the route opts in,
// responses) against the route's OpenAPI operation with openapi3filter. It runs
// last, so unauthenticated or throttled requests cost no schema work.
type validationFactory struct{ s *shared }

func (f *validationFactory) Name() string { return "validation" }

func (f *validationFactory) Build(api *bundle.Bundle, route *bundle.Route, _ *bundle.Binding, env filter.Env) (filter.Middleware, error) {
	if !route.Validation.Request && !route.Validation.Response {
		return nil, nil
	}
	doc, err := f.s.spec(api)
	if err != nil {
		return nil, err
	}
	rt, err := operationOf(doc, api, route)
	if err != nil {
		return nil, fmt.Errorf("validation of %s %s: %w", route.Method, route.Path, err)
	}
	g := f.s.generation(env)
	v := &validator{
		route:    rt,
		request:  route.Validation.Request,
		response: route.Validation.Response,
		maxBody:  route.Validation.MaxBodyBytes,
		opts: &openapi3filter.Options{
			MultiError: true,
			// Security is the security filter's job; defaults are not written into
			// the forwarded request, which reaches the upstream as the client sent it.
			AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
			SkipSettingDefaults: true,
		},
		invalidRequest:  g.m.denied.WithLabelValues("validation", "invalid_request"),
		tooLarge:        g.m.denied.WithLabelValues("validation", "too_large"),
		invalidResponse: g.m.denied.WithLabelValues("validation", "invalid_response"),
		unvalidated:     g.m.denied.WithLabelValues("validation", "response_not_validated"),
	}
	if v.maxBody <= 0 {
		v.maxBody = DefaultMaxValidatedBody
	}
	return v.middleware, nil
}

// spec parses the Bundle's OpenAPI document once per Bundle: it does not change
// with the Binding.
func (s *shared) spec(api *bundle.Bundle) (*openapi3.T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.specs == nil {
		s.specs = map[*bundle.Bundle]specEntry{}
	}
	if e, ok := s.specs[api]; ok {
		return e.doc, e.err
	}
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	data, err := leanSpec(api.OpenAPI)
	var doc *openapi3.T
	if err == nil {
		doc, err = loader.LoadFromData(data)
	}
	if err != nil {
		err = fmt.Errorf("load the bundle's openapi document: %w", err)
	}
	s.specs[api] = specEntry{doc, err}
	return doc, err
}

// leanSpec returns the OpenAPI document without what validation never reads:
// descriptions, summaries, examples and external docs. They are most of a
// large definition (box: 1.1 MB of JSON, 0.4 MB without them), and the parsed
// document stays in memory for the gateway's lifetime.
func leanSpec(raw []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber() // numbers pass through as written (limits, enums)
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(lean(v, false))
}

var (
	// documentation fields of OpenAPI and JSON Schema objects.
	documentation = map[string]bool{"description": true, "summary": true, "example": true, "examples": true, "externalDocs": true}
	// nameKeyed fields map names (properties, status codes, media types,
	// paths...) to objects: their keys are data, never dropped.
	nameKeyed = map[string]bool{
		"properties": true, "patternProperties": true, "definitions": true, "$defs": true, "dependentSchemas": true,
		"dependentRequired": true, "dependencies": true, "schemas": true, "responses": true, "parameters": true,
		"requestBodies": true, "headers": true, "securitySchemes": true, "links": true, "callbacks": true,
		"paths": true, "webhooks": true, "content": true, "encoding": true, "variables": true, "mapping": true, "scopes": true,
		"pathItems": true,
	}
	// instanceValued fields hold values (or requirement lists) that are kept as written.
	instanceValued = map[string]bool{"enum": true, "const": true, "default": true, "security": true}
)

// lean drops documentation fields in place. named says v's keys are names.
func lean(v any, named bool) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if !named {
				if documentation[k] {
					delete(t, k)
					continue
				}
				if instanceValued[k] || strings.HasPrefix(k, "x-") {
					continue
				}
			}
			t[k] = lean(x, !named && nameKeyed[k])
		}
	case []any:
		for i, x := range t {
			t[i] = lean(x, false)
		}
	}
	return v
}

type specEntry struct {
	doc *openapi3.T
	err error
}

// operationOf finds the route's operation in the document: by its upstream
// path (the document's own path key), else by the key that gives route.Path
// under the base path.
func operationOf(doc *openapi3.T, api *bundle.Bundle, route *bundle.Route) (*routers.Route, error) {
	if doc.Paths == nil {
		return nil, errors.New("the openapi document has no paths")
	}
	key := route.UpstreamPath
	item := doc.Paths.Value(key)
	if item == nil {
		for k, it := range doc.Paths.Map() {
			if path.Join("/", api.API.BasePath, k) == path.Join("/", route.Path) {
				key, item = k, it
				break
			}
		}
	}
	if item == nil {
		return nil, fmt.Errorf("path %s not in the openapi document", route.UpstreamPath)
	}
	op := item.GetOperation(strings.ToUpper(route.Method))
	if op == nil {
		return nil, fmt.Errorf("path %s has no %s operation", key, route.Method)
	}
	return &routers.Route{Spec: doc, Path: key, PathItem: item, Method: strings.ToUpper(route.Method), Operation: op}, nil
}

type validator struct {
	route             *routers.Route
	request, response bool
	maxBody           int64
	opts              *openapi3filter.Options

	invalidRequest, tooLarge, invalidResponse, unvalidated prometheus.Counter
}

func (v *validator) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := &openapi3filter.RequestValidationInput{Request: r, Route: v.route, Options: v.opts}
		if rt := filter.RouteFrom(r.Context()); rt != nil {
			in.PathParams = rt.Params
		}
		if v.request {
			if r.Body != nil && r.Body != http.NoBody {
				// openapi3filter reads the body and leaves a copy in r.Body for
				// the proxy. The server's own body goes back once the request is
				// done: the gateway reuses the request per connection and keeps
				// the connection only when its body reader was read to the end.
				body, getBody, length := r.Body, r.GetBody, r.ContentLength
				defer func() { r.Body, r.GetBody, r.ContentLength = body, getBody, length }()
				r.Body = http.MaxBytesReader(w, r.Body, v.maxBody)
			}
			if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
				v.refuse(w, r, err)
				return
			}
		}
		if !v.response || r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		v.serveValidated(w, r, next, in)
	})
}

// refuse answers 400 naming each failing field by JSON pointer, 413 for a
// body over the limit, 415 for a content type the operation does not accept.
func (v *validator) refuse(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		v.tooLarge.Inc()
		problem.Write(w, r, http.StatusRequestEntityTooLarge, "Content Too Large",
			fmt.Sprintf("the request body exceeds %d bytes", tooBig.Limit))
		return
	}
	v.invalidRequest.Inc()
	fields := fieldErrors(err)
	status := http.StatusBadRequest
	if len(fields) == 1 && fields[0].Pointer == "#/header/Content-Type" {
		status = http.StatusUnsupportedMediaType
	}
	problem.WriteDetails(w, r, &problem.Details{
		Status: status,
		Detail: "the request does not match the API definition",
		Errors: fields,
	})
}

// fieldErrors flattens openapi3filter's errors into pointer + detail pairs.
// Details come from the schema's reasons, which never quote the value sent.
func fieldErrors(err error) []problem.FieldError {
	var out []problem.FieldError
	var walk func(err error, base string)
	add := func(ptr, detail string) {
		if len(out) < maxFieldErrors {
			out = append(out, problem.FieldError{Pointer: ptr, Detail: detail})
		}
	}
	walk = func(err error, base string) {
		// Match the error itself, not what it wraps: a RequestError wraps the
		// MultiError of its schema errors and must set the base first.
		switch e := err.(type) { //nolint:errorlint // the wrapping order is the information
		case openapi3.MultiError:
			for _, inner := range e {
				walk(inner, base)
			}
		case *openapi3filter.RequestError:
			switch {
			case e.Parameter != nil:
				base = "#/" + e.Parameter.In + "/" + escapePointer(e.Parameter.Name)
			case e.RequestBody != nil && strings.HasPrefix(e.Reason, "header Content-Type"):
				add("#/header/Content-Type", "the operation does not accept this content type")
				return
			default:
				base = "#/body"
			}
			if e.Err == nil {
				add(base, e.Reason)
				return
			}
			walk(e.Err, base)
		case *openapi3.SchemaError:
			ptr := base
			for _, p := range e.JSONPointer() {
				ptr += "/" + escapePointer(p)
			}
			reason := e.Reason
			if reason == "" {
				reason = "does not match the schema (" + e.SchemaField + ")"
			}
			add(ptr, reason)
		case *openapi3filter.ParseError:
			ptr := base
			for _, p := range e.Path() {
				ptr += "/" + escapePointer(fmt.Sprint(p))
			}
			if e.Reason == "" {
				// The cause may quote the value; say what failed, not what was sent.
				add(ptr, "cannot be parsed as the declared content type")
				return
			}
			add(ptr, "cannot be parsed: "+e.Reason)
		default:
			switch {
			case errors.Is(err, openapi3filter.ErrInvalidRequired):
				add(base, "is required")
			case errors.Is(err, openapi3filter.ErrInvalidEmptyValue):
				add(base, "must not be empty")
			case errors.Unwrap(err) != nil:
				walk(errors.Unwrap(err), base)
			default:
				add(base, "is invalid")
			}
		}
	}
	walk(err, "")
	return out
}

// escapePointer escapes one RFC 6901 reference token.
func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// serveValidated buffers the upstream's response, validates it, and passes it
// on, or answers 502 when the upstream breaks the API's promise.
func (v *validator) serveValidated(w http.ResponseWriter, r *http.Request, next http.Handler, in *openapi3filter.RequestValidationInput) {
	before := make(map[string]bool, len(w.Header()))
	for k := range w.Header() {
		before[k] = true
	}
	bw := &bufferedWriter{w: w, status: http.StatusOK}
	next.ServeHTTP(bw, r)
	if bw.passing {
		v.unvalidated.Inc()
		return
	}
	err := openapi3filter.ValidateResponse(r.Context(), (&openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 bw.status,
		Header:                 w.Header(),
		Options:                &openapi3filter.Options{IncludeResponseStatus: false},
	}).SetBodyBytes(bw.buf.Bytes()))
	if err != nil {
		v.invalidResponse.Inc()
		for k := range w.Header() {
			if !before[k] {
				w.Header().Del(k)
			}
		}
		problem.Write(w, r, http.StatusBadGateway, "Bad Gateway", "the upstream's response does not match the API definition")
		return
	}
	w.WriteHeader(bw.status)
	_, _ = w.Write(bw.buf.Bytes())
}

// bufferedWriter holds a response until it is validated. Headers go straight
// to the real writer's map (nothing is sent before WriteHeader). Past
// maxValidatedResponse it gives up and streams the rest unvalidated.
type bufferedWriter struct {
	w           http.ResponseWriter
	status      int
	wroteHeader bool
	buf         bytes.Buffer
	passing     bool
}

func (b *bufferedWriter) Header() http.Header { return b.w.Header() }

func (b *bufferedWriter) WriteHeader(code int) {
	if b.passing {
		b.w.WriteHeader(code)
		return
	}
	if code >= 100 && code < 200 {
		b.w.WriteHeader(code) // informational responses are not the response
		return
	}
	if !b.wroteHeader {
		b.status, b.wroteHeader = code, true
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.passing {
		return b.w.Write(p)
	}
	b.wroteHeader = true
	if b.buf.Len()+len(p) > maxValidatedResponse {
		b.passing = true
		b.w.WriteHeader(b.status)
		if _, err := b.w.Write(b.buf.Bytes()); err != nil {
			return 0, err
		}
		b.buf = bytes.Buffer{}
		return b.w.Write(p)
	}
	return b.buf.Write(p)
}

// Flush is a no-op while buffering: the response is sent once validated.
func (b *bufferedWriter) Flush() {
	if b.passing {
		_ = http.NewResponseController(b.w).Flush()
	}
}

// Hijack is refused: a validated route cannot switch protocols mid-response.
func (b *bufferedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("response validation is on: cannot hijack")
}
