// Package problem writes RFC 9457 "application/problem+json" error responses.
//
// Every error the gateway produces itself (404, 405, 413, 401/403 from the
// policies, 429, 502/503/504) goes through this package so that clients see one
// shape, carrying the request id, and never an upstream's internals: callers pass
// a fixed title and a detail written for the client, not err.Error() of a dial.
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

// ContentType is the media type of every problem response.
const ContentType = "application/problem+json"

// Details is the problem document. Type defaults to "about:blank", as RFC 9457
// says when the status code alone explains the problem.
type Details struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// RequestID is an extension member so that a client can quote it to an operator.
	RequestID string `json:"requestId,omitempty"`
	// Errors names each failing field (request validation), RFC 9457 §3 style.
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError is one failing part of a request, located by a JSON pointer
// ("#/body/name", "#/query/limit").
type FieldError struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

// Write answers with a problem of the given status. Headers the caller set
// before (Allow, WWW-Authenticate, Retry-After) are kept.
func Write(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	WriteDetails(w, r, &Details{Status: status, Title: title, Detail: detail})
}

// WriteDetails answers with d, filling in type, title, instance and request id
// when they are empty. A HEAD request gets the headers without the body.
func WriteDetails(w http.ResponseWriter, r *http.Request, d *Details) {
	if d.Type == "" {
		d.Type = "about:blank"
	}
	if d.Title == "" {
		d.Title = http.StatusText(d.Status)
	}
	if d.Instance == "" && r != nil && r.URL != nil {
		d.Instance = r.URL.EscapedPath()
	}
	if d.RequestID == "" {
		d.RequestID = requestID(w, r)
	}
	body, err := json.Marshal(d)
	if err != nil {
		// Details holds only strings and ints; this cannot fail, but stay safe.
		body = []byte(`{"type":"about:blank","status":` + strconv.Itoa(d.Status) + `}`)
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Encoding")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.Status)
	if r != nil && r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func requestID(w http.ResponseWriter, r *http.Request) string {
	if r != nil {
		if id := filter.RequestIDFrom(r.Context()); id != "" {
			return id
		}
	}
	if id := w.Header().Get(filter.RequestIDHeader); id != "" {
		return id
	}
	if r != nil {
		return r.Header.Get(filter.RequestIDHeader)
	}
	return ""
}
