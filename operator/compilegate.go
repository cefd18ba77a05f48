package operator

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"
)

// compileGate bounds the memory that compiles take at once. A compile peaks
// at about 19 times its definition's decompressed size in live heap (box's
// 1.7 MB definition: ~30 MB), so four reconcile workers compiling large
// definitions together could outgrow the operator's memory limit and have it
// OOM-killed, which stops reconciling for every API. Each compile holds
// min(its size, budget) of the budget while it runs: small definitions
// compile side by side, one as large as the budget compiles alone.
type compileGate struct {
	sem    *semaphore.Weighted
	budget int64
}

func newCompileGate(budget int64) *compileGate {
	return &compileGate{sem: semaphore.NewWeighted(budget), budget: budget}
}

// acquire waits, as long as ctx allows, until a compile of size bytes fits
// the budget. The release it returns may be called more than once.
func (g *compileGate) acquire(ctx context.Context, size int64) (release func(), err error) {
	w := min(max(size, 1), g.budget)
	if err := g.sem.Acquire(ctx, w); err != nil {
		return nil, fmt.Errorf("wait for %d bytes of compile budget (--compile-budget): %w", w, err)
	}
	var once sync.Once
	return func() { once.Do(func() { g.sem.Release(w) }) }, nil
}

// sizeCountLimit is how far compile.InputSize counts for a definition limit:
// far enough past it that a refusal can say how large most definitions are.
func sizeCountLimit(limit int64) int64 { return 4 * limit }

// tooLarge refuses a definition over the operator's limit. The size is a
// lower bound when counting stopped early.
func tooLarge(size int64, exact bool, limit int64) *refusal {
	what := "is " + byteSize(size)
	if !exact {
		what = "is at least " + byteSize(size)
	}
	return &refusal{ReasonDefinitionTooLarge, fmt.Sprintf(
		"the definition %s once decompressed; this operator compiles definitions of at most %s "+
			"(its --max-definition-size flag; compiling takes about 20 times the definition's size in memory)",
		what, byteSize(limit))}
}

// byteSize writes n in MiB with one decimal and in bytes, for messages.
func byteSize(n int64) string {
	return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
}
