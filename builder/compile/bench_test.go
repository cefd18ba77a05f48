package compile

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCompileBox compiles the largest corpus definition; bench/compile
// compares it with kin-openapi alone.
func BenchmarkCompileBox(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(corpusDir(b), "box", "openapi.json"))
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Files: []File{{Path: "openapi.json", Data: data}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(in); err != nil {
			b.Fatal(err)
		}
	}
}
