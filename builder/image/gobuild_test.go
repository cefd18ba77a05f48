package image_test

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gatekiln/gatekiln/builder/image"
)

// TestBuildBinary builds a small program the way the runtime base image's
// gateway is built: one static executable per platform, no build paths in
// it, the same bytes twice.
func TestBuildBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	mod := t.TempDir()
	files := map[string]string{
		"go.mod":         "module example.com/gw\n\ngo 1.26\n",
		"cmd/gw/main.go": "package main\n\nimport \"os\"\n\nfunc main() { os.Exit(0) }\n",
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(mod, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mod, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, p := range image.DefaultPlatforms {
		t.Run(p.String(), func(t *testing.T) {
			var builds [][]byte
			for i := 0; i < 2; i++ {
				out := filepath.Join(t.TempDir(), "gw")
				if err := image.BuildBinary(context.Background(), image.GoBuild{Dir: mod, Package: "./cmd/gw", Platform: p, Out: out}); err != nil {
					t.Fatal(err)
				}
				data, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				builds = append(builds, data)
			}
			if !bytes.Equal(builds[0], builds[1]) {
				t.Fatal("two builds of the same source differ")
			}
			if bytes.Contains(builds[0], []byte(mod)) {
				t.Fatalf("the binary contains the build directory %s (-trimpath missing)", mod)
			}
			f, err := elf.NewFile(bytes.NewReader(builds[0]))
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != machines[p.Architecture] {
				t.Fatalf("ELF machine %s, want %s", f.Machine, machines[p.Architecture])
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
					t.Fatalf("not static: program header %s", prog.Type)
				}
			}
		})
	}
	err := image.BuildBinary(context.Background(), image.GoBuild{Dir: mod, Package: "./cmd/missing", Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Out: filepath.Join(t.TempDir(), "x")})
	if err == nil {
		t.Fatal("building a missing package succeeded")
	}
}

// TestBuildBinaryCancelLeavesNothing: a cancelled build (Ctrl-C) stops go
// build and leaves no work directory behind, although go build stopped by a
// signal does not remove its own. A stand-in for go on PATH makes one where
// go build would and waits.
func TestBuildBinaryCancelLeavesNothing(t *testing.T) {
	bin, tmp := t.TempDir(), t.TempDir()
	mark := filepath.Join(t.TempDir(), "mark")
	fake := "#!/bin/sh\nmkdir \"${GOTMPDIR:-$TMPDIR}/go-build-stand-in\" || exit 1\necho started > \"$GATEKILN_TEST_MARK\"\nexec sleep 60\n"
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("TMPDIR", tmp)
	t.Setenv("GATEKILN_TEST_MARK", mark)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- image.BuildBinary(ctx, image.GoBuild{Dir: t.TempDir(), Package: "./cmd/gw", Platform: image.DefaultPlatforms[0], Out: filepath.Join(t.TempDir(), "gw")})
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stand-in for go build did not start in 10s")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a cancelled build returned no error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("BuildBinary did not return within 20s of cancel")
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left behind in $TMPDIR: %v", left)
	}
}
