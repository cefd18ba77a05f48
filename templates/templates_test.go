package templates

import (
	"strings"
	"testing"
)

func TestRenderDockerfile(t *testing.T) {
	tests := []struct {
		name    string
		in      Dockerfile
		want    string
		wantErr string
	}{
		{
			name: "labels quoted",
			in: Dockerfile{Base: "r.example/rt@sha256:ab", BundlePath: "/etc/b.json", Labels: []Label{
				{Key: "a", Value: `say "hi" \ $HOME`},
			}},
			want: "FROM r.example/rt@sha256:ab\nCOPY bundle.json /etc/b.json\nLABEL \"a\"=\"say \\\"hi\\\" \\\\ \\$HOME\"\n",
		},
		{name: "base by tag refused", in: Dockerfile{Base: "r.example/rt:latest"}, wantErr: "not pinned by digest"},
		{name: "line break refused", in: Dockerfile{Base: "r@sha256:ab", Labels: []Label{{Key: "a", Value: "x\nRUN evil"}}}, wantErr: "line breaks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RenderDockerfile(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(string(got), tt.want) {
				t.Fatalf("got:\n%s\nwant it to end with:\n%s", got, tt.want)
			}
		})
	}
}
