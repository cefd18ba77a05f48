package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseClaimHeaders(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]string
		want    []claimHeader
		wantErr string
	}{
		{"none", nil, []claimHeader{}, ""},
		{"sorted by claim, canonical header", map[string]string{"sub": "x-consumer", "email": "X-EMAIL"},
			[]claimHeader{{"email", "X-Email"}, {"sub", "X-Consumer"}}, ""},
		{"invalid header name", map[string]string{"sub": "x consumer"}, nil, `claim header "x consumer": not a valid header name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseClaimHeaders(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseClaimHeaders = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
