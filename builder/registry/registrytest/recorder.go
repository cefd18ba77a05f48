package registrytest

import (
	"io"
	"log"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Request is one HTTP request a client sent to a registry.
type Request struct {
	Method string
	Path   string
	Query  string
	Status int
}

// Recorder is an http.RoundTripper wrapper that records every request.
// Plug it in with registry.Config{WrapTransport: rec.Wrap}.
type Recorder struct {
	mu       sync.Mutex
	requests []Request
}

// Wrap returns inner wrapped by the recorder.
func (r *Recorder) Wrap(inner http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := inner.RoundTrip(req)
		rec := Request{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery}
		if resp != nil {
			rec.Status = resp.StatusCode
		}
		r.mu.Lock()
		r.requests = append(r.requests, rec)
		r.mu.Unlock()
		return resp, err
	})
}

// Requests returns a copy of what was recorded.
func (r *Recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// Reset forgets what was recorded.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.requests = nil
	r.mu.Unlock()
}

// RoundTrips counts the requests other than the /v2/ ping that
// go-containerregistry sends once per repository and operation.
func (r *Recorder) RoundTrips() int {
	n := 0
	for _, q := range r.Requests() {
		if q.Path != "/v2/" {
			n++
		}
	}
	return n
}

// Uploads returns the requests that upload blob content: the PATCH and PUT
// of an upload session, and a POST that is not a cross-repository mount.
// A mount (POST ...?mount=) moves no bytes and is not an upload.
func (r *Recorder) Uploads() []Request {
	var out []Request
	for _, q := range r.Requests() {
		if !strings.Contains(q.Path, "/blobs/uploads") {
			continue
		}
		if q.Method == http.MethodPost && strings.Contains(q.Query, "mount=") && q.Status == http.StatusCreated {
			continue
		}
		if q.Method == http.MethodPost && q.Status == http.StatusAccepted {
			// Opening an upload session moves no bytes by itself; the PATCH or
			// PUT that follows is counted.
			continue
		}
		out = append(out, q)
	}
	return out
}

// Mounts returns the successful cross-repository blob mounts.
func (r *Recorder) Mounts() []Request {
	var out []Request
	for _, q := range r.Requests() {
		if q.Method == http.MethodPost && strings.Contains(q.Query, "mount=") && q.Status == http.StatusCreated {
			out = append(out, q)
		}
	}
	return out
}

// ManifestWrites returns the manifest PUTs (tags or digests written).
func (r *Recorder) ManifestWrites() []Request {
	var out []Request
	for _, q := range r.Requests() {
		if q.Method == http.MethodPut && strings.Contains(q.Path, "/manifests/") {
			out = append(out, q)
		}
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// UploadedBlobs returns the digests of the blobs whose upload completed
// (the PUT that closes an upload session names the digest).
func (r *Recorder) UploadedBlobs() []string {
	var out []string
	for _, q := range r.Requests() {
		if q.Method != http.MethodPut || !strings.Contains(q.Path, "/blobs/uploads/") {
			continue
		}
		v, err := url.ParseQuery(q.Query)
		if err == nil && v.Get("digest") != "" {
			out = append(out, v.Get("digest"))
		}
	}
	sort.Strings(out)
	return out
}
