package pipeline

import (
	"context"
	"os"

	"golang.org/x/sync/semaphore"
)

// admission bounds the bytes of the files being copied and uploaded at
// once, so that many workers keep a backlog of small files moving (each
// costs a round trip, not bandwidth) while large files do not split the
// uplink many ways: each would take that many times longer, and a pod kill
// would throw away that much more unfinished transfer. A file counts its
// size up to a quarter of the bound, so four large files can always move
// together. Waiters are served first come, first served: a large file is
// never starved by a stream of small ones.
type admission struct {
	sem *semaphore.Weighted
	max int64
}

func newAdmission(max int64) *admission {
	if max <= 0 {
		return nil
	}
	return &admission{sem: semaphore.NewWeighted(max), max: max}
}

func (a *admission) weight(size int64) int64 { return max(0, min(size, a.max/4)) }

// admit waits until the claimed file may start and returns what frees its
// share. The size is the one the watcher saw stable (a late append is not
// weighed, which only loosens the bound), else the file's now; a file that
// cannot be read counts nothing and its stage step reports why.
func (p *Pipeline) admit(ctx context.Context, it *Item) (func(), error) {
	a := p.admission
	if a == nil {
		return func() {}, nil
	}
	var n int64
	if it.Size > 0 {
		n = a.weight(it.Size)
	} else if fi, err := os.Stat(p.processingPath(it)); err == nil {
		n = a.weight(fi.Size())
	}
	if err := a.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	return func() { a.sem.Release(n) }, nil
}
