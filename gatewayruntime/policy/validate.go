package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
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

// LoopSafe (filter.LoopSafe): validation computes; a body is read from the
// client's connection, which a loop waits on.
func (f *validationFactory) LoopSafe(*bundle.Bundle, *bundle.Route, *bundle.Binding) bool {
	return true
}

func (f *validationFactory) Build(api *bundle.Bundle, route *bundle.Route, _ *bundle.Binding, env filter.Env) (filter.Middleware, error) {
	if !route.Validation.Request && !route.Validation.Response {
		return nil, nil
	}
	x, err := f.s.spec(api)
	if err != nil {
		return nil, err
	}
	key, err := x.find(api, route)
	if err != nil {
		return nil, fmt.Errorf("validation of %s %s: %w", route.Method, route.Path, err)
	}
	g := f.s.generation(env)
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &validator{
		spec:     x,
		op:       x.operation(key, route.Method),
		key:      key,
		method:   route.Method,
		log:      log,
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

// ReadDocument indexes the document (filter.DocumentReader).
func (f *validationFactory) ReadDocument(api *bundle.Bundle) { _, _ = f.s.spec(api) }

// spec cuts the Bundle's OpenAPI document up once per Bundle (see specIndex):
// it does not change with the Binding.
func (s *shared) spec(api *bundle.Bundle) (*specIndex, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.specs == nil {
		s.specs = map[*bundle.Bundle]specEntry{}
	}
	if e, ok := s.specs[api]; ok {
		return e.x, e.err
	}
	x, err := newSpecIndex(api)
	if err != nil {
		err = fmt.Errorf("load the bundle's openapi document: %w", err)
	}
	s.specs[api] = specEntry{x, err}
	return x, err
}

type validator struct {
	spec              *specIndex
	op                *lazyOp
	key, method       string
	log               *slog.Logger
	request, response bool
	maxBody           int64
	opts              *openapi3filter.Options

	invalidRequest, tooLarge, invalidResponse, unvalidated prometheus.Counter
}

func (v *validator) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, err := v.spec.load(v.op, v.key, v.method)
		if err != nil {
			// The compiler loaded this document whole: a failure here is a bug.
			// It is logged once; every request of the operation gets the 500.
			v.op.logged.Do(func() {
				v.log.Error("request validation unavailable", "route", v.method+" "+v.key, "err", err)
			})
			problem.Write(w, r, http.StatusInternalServerError, "", "The gateway cannot validate this operation's requests.")
			return
		}
		in := &openapi3filter.RequestValidationInput{Request: r, Route: rt, Options: v.opts}
		if rt := filter.RouteFrom(r.Context()); rt != nil {
			in.PathParams = rt.ParamMap()
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
		// The rest of the body is not read: the connection ends.
		w.Header().Set("Connection", "close")
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
