package pluginhost

import (
	"context"
	"sync"
)

// gate lets calls to one plugin process share it, and lets a call marked
// with sdk.Isolate have it alone. When a process dies, every call in
// flight fails with it and the hub cannot tell which one killed it; each
// is retried alone, so a second death is the fault of that one call (the
// poison message) and no other message is charged for it.
//
// A call waiting to go alone keeps new calls out until it is done, so it
// waits at most for the calls already in flight, which end at their call
// timeout.
type gate struct {
	mu      sync.Mutex
	shared  int  // calls in flight that share the process
	solo    bool // a call holds the process alone, or waits for it
	changed chan struct{}
}

// enter waits for a place: shared, or alone. It returns ctx's error if
// ctx ends first.
func (g *gate) enter(ctx context.Context, alone bool) error {
	g.mu.Lock()
	for g.solo {
		if err := g.wait(ctx); err != nil {
			g.mu.Unlock()
			return err
		}
	}
	if !alone {
		g.shared++
		g.mu.Unlock()
		return nil
	}
	g.solo = true // from here new calls wait
	for g.shared > 0 {
		if err := g.wait(ctx); err != nil {
			g.solo = false
			g.broadcast()
			g.mu.Unlock()
			return err
		}
	}
	g.mu.Unlock()
	return nil
}

// leave gives the place back.
func (g *gate) leave(alone bool) {
	g.mu.Lock()
	if alone {
		g.solo = false
	} else {
		g.shared--
	}
	g.broadcast()
	g.mu.Unlock()
}

// alone reports whether a call holds the process alone.
func (g *gate) alone() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.solo && g.shared == 0
}

// wait releases g.mu until the next change or ctx's end, and takes it
// again on a change; on ctx's end it returns with g.mu held too.
func (g *gate) wait(ctx context.Context) error {
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	ch := g.changed
	g.mu.Unlock()
	select {
	case <-ch:
		g.mu.Lock()
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		return ctx.Err()
	}
}

func (g *gate) broadcast() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}
