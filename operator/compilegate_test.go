package operator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

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
