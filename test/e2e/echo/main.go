// Command echo is the end-to-end suite's upstream: it answers every request
// with a JSON description of what it received (method, path, query, headers
// and its own name from $ECHO_NAME), so the test can see what the gateway
// forwarded. With $ECHO_JWKS set it also serves that JSON Web Key Set at
// /.well-known/jwks.json: the suite's token issuer.
package main

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"
	"time"
)

// Request is what the echo server reports about a request it received.
type Request struct {
	Name    string              `json:"name"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Headers map[string][]string `json:"headers"`
	Body    string              `json:"body"`
}

func main() {
	addr := os.Getenv("ECHO_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	name := os.Getenv("ECHO_NAME")
	jwks := os.Getenv("ECHO_JWKS")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if jwks != "" && r.URL.Path == "/.well-known/jwks.json" {
			w.Header().Set("Content-Type", "application/jwk-set+json")
			_, _ = io.WriteString(w, jwks)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "application/json")
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(Request{
			Name: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Headers: r.Header, Body: string(body),
		})
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
