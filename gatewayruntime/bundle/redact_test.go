package bundle

import "testing"

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://backend:8443/x":         "https://backend:8443/x",
		"https://user:pw@backend:8443/x": "https://…@backend:8443/x",
		"redis://:pw@redis:6379":         "redis://…@redis:6379",
		"https://u:p@ss/word@host/path":  "https://…@host/path",
		"user:pw@host":                   "…@host",
		"https://host/path":              "https://host/path",
		"https://user:pw@host:port/%zz":  "https://…@host:port/%zz",
		"":                               "",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
