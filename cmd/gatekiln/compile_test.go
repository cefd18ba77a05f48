package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/image/imagetest"
	"github.com/gatekiln/gatekiln/builder/source"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// buildCompileCLI builds this command into a temporary directory, so the test runs
// the binary scripts run.
func buildCompileCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gatekiln")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type cliRun struct {
	code           int
	stdout, stderr string
}

func runCompileCLI(t *testing.T, bin, dir string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run %v: %v", args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

var inputsDigestLine = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func lastStdoutLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func absPath(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestCompileCLI holds the CLI's contract: exit 0, the inputs digest as the
// last line of stdout, bundle.json and binding.json only with -o, and on bad
// input exit 1 with file, pointer and reason on stderr.
func TestCompileCLI(t *testing.T) {
	bin := buildCompileCLI(t)
	petstore := absPath(t, "../../samples/petstore/petstore.yaml")
	kinds := absPath(t, "../../samples/petstore/kinds.yaml")

	t.Run("standalone writes nothing", func(t *testing.T) {
		work := t.TempDir()
		r := runCompileCLI(t, bin, work, "compile", petstore)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if !inputsDigestLine.MatchString(lastStdoutLine(r.stdout)) {
			t.Errorf("last line %q is not the inputs digest", lastStdoutLine(r.stdout))
		}
		if entries, _ := os.ReadDir(work); len(entries) != 0 {
			t.Errorf("wrote %v without -o", entries)
		}
	})

	t.Run("with kinds and -o", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		r := runCompileCLI(t, bin, t.TempDir(), "compile", "--kinds", kinds, "-o", out, petstore)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		bundleBytes, err := os.ReadFile(filepath.Join(out, "bundle.json"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bundle.Parse(bundleBytes); err != nil {
			t.Fatalf("bundle.json: %v", err)
		}
		b, err := bundle.Load(filepath.Join(out, "bundle.json"))
		if err != nil {
			t.Fatal(err)
		}
		binding, err := bundle.LoadBinding(out)
		if err != nil {
			t.Fatal(err)
		}
		if m := binding.Missing(b); len(m) != 0 {
			t.Errorf("binding.json lacks %v", m)
		}
		// The digest is the library's, over the same bytes.
		files, err := source.Read(petstore)
		if err != nil {
			t.Fatal(err)
		}
		res, err := compile.Compile(compile.Input{Files: files})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.BundleBytes, bundleBytes) {
			t.Errorf("bundle.json differs from the library's bundle")
		}
		if want := compile.InputsDigest(bundleBytes, "", compile.Version); lastStdoutLine(r.stdout) != want {
			t.Errorf("digest %q, want %q", lastStdoutLine(r.stdout), want)
		}
		// The runtime base image is part of the digest.
		r2 := runCompileCLI(t, bin, t.TempDir(), "compile", "--runtime-digest", "sha256:"+strings.Repeat("1", 64), petstore)
		if r2.code != 0 || lastStdoutLine(r2.stdout) == lastStdoutLine(r.stdout) || !inputsDigestLine.MatchString(lastStdoutLine(r2.stdout)) {
			t.Errorf("--runtime-digest: exit %d, digest %q", r2.code, lastStdoutLine(r2.stdout))
		}
	})

	t.Run("the same definition as JSON gives the same digest", func(t *testing.T) {
		dir := t.TempDir()
		json := filepath.Join(dir, "petstore.json")
		r := runCompileCLI(t, bin, dir, "compile", "-o", dir, petstore)
		if r.code != 0 {
			t.Fatal(r.stderr)
		}
		// Take the embedded document (the definition itself, canonical) as the JSON input.
		b, err := bundle.Load(filepath.Join(dir, "bundle.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(json, b.OpenAPI, 0o644); err != nil {
			t.Fatal(err)
		}
		r2 := runCompileCLI(t, bin, dir, "compile", json)
		if r2.code != 0 || lastStdoutLine(r2.stdout) != lastStdoutLine(r.stdout) {
			t.Errorf("JSON form: exit %d, digest %q, want %q (%s)", r2.code, lastStdoutLine(r2.stdout), lastStdoutLine(r.stdout), r2.stderr)
		}
	})

	corpusBad := filepath.Join(absPath(t, "../../.."), "shared", "corpus", "bad")
	if _, err := os.Stat(corpusBad); err != nil {
		t.Fatalf("corpus not found beside the repository: %v", err)
	}
	for _, tc := range []struct {
		file, kinds string
		want        []string
	}{
		{"unresolved-ref.yaml", "", []string{"unresolved-ref.yaml: ", "/paths/~1pets/get/responses/200/content/application~1json/schema/$ref", "(line 11)", "#/components/schemas/DoesNotExist"}},
		{"remote-ref.yaml", "", []string{"remote-ref.yaml: ", "/schema/$ref", "never fetched over the network"}},
		{"not-yaml.yaml", "", []string{"not-yaml.yaml: ", "line 3", "not valid YAML or JSON"}},
		{"missing-endpoint.yaml", kinds, []string{"missing-endpoint.yaml: ", "/x-gatekiln-endpoint", `Endpoint "no-such-endpoint" not found in namespace "default"`}},
	} {
		t.Run("bad/"+tc.file, func(t *testing.T) {
			args := []string{"compile"}
			if tc.kinds != "" {
				args = append(args, "--kinds", tc.kinds)
			}
			out := filepath.Join(t.TempDir(), "out")
			r := runCompileCLI(t, bin, t.TempDir(), append(args, "-o", out, filepath.Join(corpusBad, tc.file))...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
			if inputsDigestLine.MatchString(lastStdoutLine(r.stdout)) {
				t.Errorf("printed a digest for bad input")
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("wrote outputs for bad input")
			}
		})
	}

	t.Run("usage", func(t *testing.T) {
		if r := runCompileCLI(t, bin, t.TempDir(), "compile"); r.code != 1 {
			t.Errorf("no arguments: exit %d", r.code)
		}
		if r := runCompileCLI(t, bin, t.TempDir(), "compile", "/nonexistent/api.yaml"); r.code != 1 || !strings.Contains(r.stderr, "/nonexistent/api.yaml") {
			t.Errorf("missing file: exit %d, %q", r.code, r.stderr)
		}
	})
}

// TestCompileOutputsAreAPair: -o DIR holds the old bundle.json and
// binding.json or the new ones, never one of each, and no temporary file.
func TestCompileOutputsAreAPair(t *testing.T) {
	petstore := filepath.Join("..", "..", "samples", "petstore", "petstore.yaml")
	const old = "old\n"
	tests := []struct {
		name    string
		before  map[string]string // name: content, or "" for a directory
		wantErr string
	}{
		{name: "replaces the old pair", before: map[string]string{"bundle.json": old, bundle.BindingFile: old}},
		{name: "binding.json is a directory", before: map[string]string{"bundle.json": old, bundle.BindingFile: ""}, wantErr: "binding.json: is a directory"},
		{name: "bundle.json is a directory", before: map[string]string{"bundle.json": "", bundle.BindingFile: old}, wantErr: "bundle.json: is a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Several times: a write order that happens to work must not pass.
			for range 8 {
				dir := t.TempDir()
				for name, content := range tc.before {
					p := filepath.Join(dir, name)
					if content == "" {
						if err := os.Mkdir(p, 0o755); err != nil {
							t.Fatal(err)
						}
					} else if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				_, err := runCLI(t, newCompileCmd(), "compile", "-o", dir, petstore)
				entries, _ := os.ReadDir(dir)
				if len(entries) != 2 {
					t.Fatalf("%s holds %v, want bundle.json and binding.json only", dir, entries)
				}
				if tc.wantErr != "" {
					for name, content := range tc.before {
						if got, _ := os.ReadFile(filepath.Join(dir, name)); content != "" && string(got) != content {
							t.Fatalf("%s was replaced although the pair could not be (%v)", name, err)
						}
					}
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("error %v, want %q", err, tc.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				b, err := bundle.Load(filepath.Join(dir, "bundle.json"))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := bundle.LoadBinding(dir); err != nil {
					t.Fatal(err)
				}
				if st, _ := os.Stat(filepath.Join(dir, "bundle.json")); st.Mode().Perm() != 0o644 {
					t.Errorf("bundle.json mode %v, want 0644", st.Mode().Perm())
				}
				if b.API.Title != "Swagger Petstore" {
					t.Errorf("bundle.json is not the new one: %+v", b.API)
				}
			}
		})
	}
}

// TestFlagChecks: flags whose value would be used as garbage are refused,
// naming the flag.
func TestFlagChecks(t *testing.T) {
	petstore := filepath.Join("..", "..", "samples", "petstore", "petstore.yaml")
	notPEM := filepath.Join(t.TempDir(), "random.crt")
	if err := os.WriteFile(notPEM, []byte("random bytes, no certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var binFlags []string
	for _, b := range imagetest.FakeBinaries(t) {
		binFlags = append(binFlags, "--binary", b.Platform.String()+"="+b.Path)
	}
	tests := []struct {
		name string
		cmd  *cobra.Command
		args []string
		want string
	}{
		{"digest not a digest", newCompileCmd(), []string{"compile", "--runtime-digest", "notadigest", petstore}, `--runtime-digest "notadigest": want sha256:<64 lowercase hex>`},
		{"digest in upper case", newCompileCmd(), []string{"compile", "--runtime-digest", "sha256:" + strings.Repeat("A", 64), petstore}, "--runtime-digest"},
		{"digest too short", newCompileCmd(), []string{"compile", "--runtime-digest", "sha256:abc", petstore}, "--runtime-digest"},
		{"digest of another algorithm", newCompileCmd(), []string{"compile", "--runtime-digest", "sha512:" + strings.Repeat("a", 128), petstore}, "--runtime-digest"},
		{"digest as an image reference", newCompileCmd(), []string{"compile", "--runtime-digest", "reg/runtime@sha256:" + strings.Repeat("a", 64), petstore}, "--runtime-digest"},
		{"CA certificates not PEM", newRuntimeImageCmd(), append([]string{"runtime-image", "--push", "127.0.0.1:20999/gatekiln/runtime", "--insecure-registry", "127.0.0.1:20999", "--ca-certs", notPEM}, binFlags...), "--ca-certs " + notPEM + ": CA certificates: no PEM certificate found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, tc.cmd, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if inputsDigestLine.MatchString(lastLine(out)) {
				t.Errorf("printed a digest: %s", out)
			}
		})
	}
}
