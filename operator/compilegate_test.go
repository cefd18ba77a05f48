package operator

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/builder/compile"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDefinitionSize(t *testing.T) {
	plain := bytes.Repeat([]byte("a"), 1000)
	bomb := gz(t, bytes.Repeat([]byte("b"), 10<<20))
	for _, c := range []struct {
		name      string
		files     [][]byte
		limit     int64
		size      int64
		exact     bool
		overLimit bool
	}{
		{"plain", [][]byte{plain}, 4096, 1000, true, false},
		{"gzip counts decompressed", [][]byte{gz(t, plain)}, 4096, 1000, true, false},
		{"files add up", [][]byte{plain, gz(t, plain), plain}, 4096, 3000, true, false},
		{"plain over the limit is exact", [][]byte{plain, plain}, 1500, 2000, true, true},
		{"a gzip bomb stops past the limit", [][]byte{bomb}, 1 << 20, 1<<20 + 1, false, true},
		{"nothing inflated once over", [][]byte{plain, bomb}, 500, 1000, false, true},
		{"not gzip after all: its own bytes", [][]byte{{0x1f, 0x8b, 0, 0}}, 4096, 4, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var files []compile.File
			for _, d := range c.files {
				files = append(files, compile.File{Path: "f", Data: d})
			}
			size, exact := definitionSize(files, c.limit)
			if size != c.size || exact != c.exact || (size > c.limit) != c.overLimit {
				t.Errorf("definitionSize = %d, exact %v; want %d, %v (over %v)", size, exact, c.size, c.exact, c.overLimit)
			}
		})
	}
}

func TestTooLargeMessage(t *testing.T) {
	for _, c := range []struct {
		size  int64
		exact bool
		want  string
	}{
		{9 << 20, true, "the definition is 9.0 MiB (9437184 bytes) once decompressed"},
		{32<<20 + 1, false, "the definition is at least 32.0 MiB (33554433 bytes)"},
	} {
		r := tooLarge(c.size, c.exact, 8<<20)
		if r.Reason != ReasonDefinitionTooLarge || !strings.Contains(r.Message, c.want) || !strings.Contains(r.Message, "--max-definition-size") {
			t.Errorf("tooLarge(%d, %v) = %+v, want %q and the flag", c.size, c.exact, r, c.want)
		}
	}
}

// TestCompileGate: compiles share the budget by size; one larger than the
// budget takes all of it (and so runs alone) instead of waiting forever; a
// waiting compile gives up with its reconcile's context.
func TestCompileGate(t *testing.T) {
	g := newCompileGate(10)
	ctx := context.Background()
	relA, err := g.acquire(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	relB, err := g.acquire(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}

	// Full: a third compile waits until one of the others is done.
	got := make(chan error, 1)
	var relC func()
	go func() {
		var err error
		relC, err = g.acquire(ctx, 5)
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a compile started over the budget (err %v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	relB()
	relB() // releasing twice gives back nothing more
	select {
	case <-got:
		t.Fatal("a compile of 5 started with 4 free")
	case <-time.After(50 * time.Millisecond):
	}
	relA()
	if err := <-got; err != nil {
		t.Fatal(err)
	}

	// The reconcile's context bounds the wait.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := g.acquire(short, 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire with a done context: %v", err)
	}
	relC()

	// Larger than the budget: it takes the whole budget, once free.
	relBig, err := g.acquire(ctx, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if g.sem.TryAcquire(1) {
		t.Fatal("a compile ran beside one as large as the budget")
	}
	relBig()
	if !g.sem.TryAcquire(10) {
		t.Fatal("the budget was not given back")
	}
}
