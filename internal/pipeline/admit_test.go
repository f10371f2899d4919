package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Files count their size up to a quarter of the bound: four large files
// fill it, small ones share what is left, and a freed share lets the next in.
func TestAdmissionBoundsBytesInFlight(t *testing.T) {
	p, l := benchPipeline(t)
	p.admission = newAdmission(4000)
	ctx := context.Background()
	file := func(name string, size int64) *Item {
		path := filepath.Join(l.ProcessingDir("20260101", "s"), name)
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		return &Item{Session: "s", Date: "20260101", Name: name}
	}
	var releases []func()
	for i := range 3 {
		r, err := p.admit(ctx, file(fmt.Sprintf("big%d", i), 1<<30))
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	// 3000 of 4000 held: ten small files of 100 bytes fit, the eleventh not.
	for i := range 10 {
		r, err := p.admit(ctx, file(fmt.Sprintf("small%d", i), 100))
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	if p.admission.sem.TryAcquire(1) {
		t.Fatal("a byte was admitted past the bound")
	}
	releases[0]() // one large file done: 1000 free
	if !p.admission.sem.TryAcquire(1000) {
		t.Fatal("the freed share was not given back")
	}
	// A file that cannot be read counts nothing; its stage step says why.
	r, err := p.admit(ctx, &Item{Session: "s", Date: "20260101", Name: "missing"})
	if err != nil {
		t.Fatal(err)
	}
	r()
	// A waiter gives up with its context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.admit(cctx, file("late", 500)); err == nil {
		t.Fatal("admitted with no room and a cancelled context")
	}
}
