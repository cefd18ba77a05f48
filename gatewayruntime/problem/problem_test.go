package problem

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		status   int
		title    string
		withID   bool
		wantBody bool
		wantID   string
	}{
		{"get with state", http.MethodGet, http.StatusBadGateway, "Bad Gateway", true, true, "req-1"},
		{"head has no body", http.MethodHead, http.StatusNotFound, "", true, false, "req-1"},
		{"id from request header", http.MethodGet, http.StatusTooManyRequests, "Too Many Requests", false, true, "from-client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/v1/pets?x=1", nil)
			r.Header.Set(filter.RequestIDHeader, "from-client")
			if tt.withID {
				s := filter.NewState(nil)
				s.RequestID = "req-1"
				r = r.WithContext(filter.WithState(r.Context(), s))
			}
			w := httptest.NewRecorder()
			w.Header().Set("Allow", "GET")
			Write(w, r, tt.status, tt.title, "the detail")
			if w.Code != tt.status {
				t.Fatalf("status = %d", w.Code)
			}
			if ct := w.Header().Get("Content-Type"); ct != ContentType {
				t.Fatalf("content type = %q", ct)
			}
			if w.Header().Get("Allow") != "GET" {
				t.Fatal("caller's header dropped")
			}
			if !tt.wantBody {
				if w.Body.Len() != 0 {
					t.Fatalf("HEAD body = %q", w.Body.String())
				}
				return
			}
			var d Details
			if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
				t.Fatal(err)
			}
			want := Details{Type: "about:blank", Title: http.StatusText(tt.status), Status: tt.status,
				Detail: "the detail", Instance: "/v1/pets", RequestID: tt.wantID}
			if d.Type != want.Type || d.Title != want.Title || d.Status != want.Status || d.Detail != want.Detail ||
				d.Instance != want.Instance || d.RequestID != want.RequestID {
				t.Fatalf("got %+v, want %+v", d, want)
			}
		})
	}
}

func TestWriteDetailsFieldErrors(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/v1/pets", nil)
	w := httptest.NewRecorder()
	WriteDetails(w, r, &Details{Status: 400, Detail: "invalid request",
		Errors: []FieldError{{Pointer: "#/body/name", Detail: "required"}}})
	var d Details
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d.Title != "Bad Request" || len(d.Errors) != 1 || d.Errors[0].Pointer != "#/body/name" {
		t.Fatalf("got %+v", d)
	}
}
