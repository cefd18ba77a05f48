package compile

import (
	"bytes"
	"testing"
)

// TestInputSize: gzip'd files count decompressed, and counting stops past
// the limit (a gzip bomb inflates no further).
func TestInputSize(t *testing.T) {
	plain := bytes.Repeat([]byte("a"), 1000)
	bomb := gzipped(t, bytes.Repeat([]byte("b"), 10<<20))
	for _, c := range []struct {
		name      string
		files     [][]byte
		limit     int64
		size      int64
		exact     bool
		overLimit bool
	}{
		{"plain", [][]byte{plain}, 4096, 1000, true, false},
		{"gzip counts decompressed", [][]byte{gzipped(t, plain)}, 4096, 1000, true, false},
		{"files add up", [][]byte{plain, gzipped(t, plain), plain}, 4096, 3000, true, false},
		{"plain over the limit is exact", [][]byte{plain, plain}, 1500, 2000, true, true},
		{"a gzip bomb stops past the limit", [][]byte{bomb}, 1 << 20, 1<<20 + 1, false, true},
		{"nothing inflated once over", [][]byte{plain, bomb}, 500, 1000, false, true},
		{"not gzip after all: its own bytes", [][]byte{{0x1f, 0x8b, 0, 0}}, 4096, 4, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var files []File
			for _, d := range c.files {
				files = append(files, File{Path: "f", Data: d})
			}
			size, exact := InputSize(files, c.limit)
			if size != c.size || exact != c.exact || (size > c.limit) != c.overLimit {
				t.Errorf("InputSize = %d, exact %v; want %d, %v (over %v)", size, exact, c.size, c.exact, c.overLimit)
			}
		})
	}
}
