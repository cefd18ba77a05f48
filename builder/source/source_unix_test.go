//go:build unix

package source

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadTakesRegularFilesOnly: in a directory, links, FIFOs and devices are
// skipped, not followed or read, and a dangling link is no error; a link
// named as an argument is read.
func TestReadTakesRegularFilesOnly(t *testing.T) {
	dir := t.TempDir()
	api := filepath.Join(dir, "api")
	write(t, dir, "api/openapi.yaml", []byte(root))
	write(t, dir, "api/schemas/pet.yaml", []byte("Pet: {type: object}\n"))
	secret := write(t, dir, "outside/secret.yaml", []byte("password: hunter2\n"))
	write(t, dir, "outside/more/x.yaml", []byte("x: 1\n"))
	links := map[string]string{
		"api/secret.yaml":   secret,
		"api/dangling.yaml": filepath.Join(dir, "nowhere.yaml"),
		"api/schemas/more":  filepath.Join(dir, "outside", "more"),
		"api/null.yaml":     os.DevNull,
		"link.yaml":         filepath.Join(api, "openapi.yaml"),
		"onlylink/api.yaml": filepath.Join(api, "openapi.yaml"),
	}
	for name, target := range links {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(api, "pipe.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		args    []string
		want    []string
		wantErr string
	}{
		{name: "a directory as the root", args: []string{api}, want: []string{"openapi.yaml", "schemas/pet.yaml"}},
		{name: "root file and directory", args: []string{filepath.Join(api, "openapi.yaml"), api}, want: []string{"openapi.yaml", "schemas/pet.yaml"}},
		{name: "a link named as the root", args: []string{filepath.Join(dir, "link.yaml")}, want: []string{"link.yaml"}},
		{name: "a link named beside the root", args: []string{filepath.Join(api, "openapi.yaml"), filepath.Join(api, "secret.yaml")}, want: []string{"openapi.yaml", "secret.yaml"}},
		{name: "a directory whose only definition is a link", args: []string{filepath.Join(dir, "onlylink")}, wantErr: "cannot tell the root document"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				paths []string
				err   error
			}
			done := make(chan result, 1)
			go func() {
				files, err := Read(tc.args...)
				done <- result{paths(files), err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Read did not return in 10s (reading the FIFO?)")
			}
			if tc.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", r.err, tc.wantErr)
				}
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !reflect.DeepEqual(r.paths, tc.want) {
				t.Errorf("paths %v, want %v", r.paths, tc.want)
			}
		})
	}
}
