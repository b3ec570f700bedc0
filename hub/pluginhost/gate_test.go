package pluginhost

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func reserved(g *gate) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.solo
}

// blocked asserts that entering does not succeed while the gate is held
// against it: the attempt must end at its own deadline.
func blocked(t *testing.T, g *gate, alone bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := g.enter(ctx, alone); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			g.leave(alone)
		}
		t.Fatalf("entered (alone %v) while the gate was held against it: %v", alone, err)
	}
}

func TestGateAloneWaitsForSharedAndKeepsNewOnesOut(t *testing.T) {
	var g gate
	bg := context.Background()
	for range 2 { // shared calls share
		if err := g.enter(bg, false); err != nil {
			t.Fatal(err)
		}
	}
	entered := make(chan error, 1)
	go func() { entered <- g.enter(bg, true) }()
	waitFor(t, "the alone call to reserve the gate", func() bool { return reserved(&g) })
	blocked(t, &g, false) // a new shared call waits behind the reservation
	g.leave(false)
	select {
	case err := <-entered:
		t.Fatalf("alone entered with a shared call in flight: %v", err)
	default:
	}
	g.leave(false)
	if err := <-entered; err != nil {
		t.Fatal(err)
	}
	if !g.alone() {
		t.Fatal("alone() false while a call holds the gate alone")
	}
	blocked(t, &g, false)
	blocked(t, &g, true)
	g.leave(true)
	if g.alone() {
		t.Fatal("alone() true after the call left")
	}
	if err := g.enter(bg, false); err != nil {
		t.Fatal(err)
	}
	g.leave(false)
}

func TestGateCancelledAloneReleasesReservation(t *testing.T) {
	var g gate
	if err := g.enter(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	blocked(t, &g, true) // its deadline ends the wait...
	// ...and the reservation with it: shared calls get in again.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.enter(ctx, false); err != nil {
		t.Fatalf("shared call after a cancelled alone call: %v", err)
	}
	if g.alone() {
		t.Fatal("alone() with shared calls in flight")
	}
}

// Many callers, some alone: an alone call never overlaps any other.
func TestGateExclusion(t *testing.T) {
	var g gate
	var shared, alone atomic.Int64
	var bad atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 300 {
				a := r.IntN(8) == 0
				if err := g.enter(context.Background(), a); err != nil {
					t.Error(err)
					return
				}
				if a {
					if alone.Add(1) != 1 || shared.Load() != 0 {
						bad.Add(1)
					}
					alone.Add(-1)
				} else {
					shared.Add(1)
					if alone.Load() != 0 {
						bad.Add(1)
					}
					shared.Add(-1)
				}
				g.leave(a)
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d overlaps with an alone call", bad.Load())
	}
}

func BenchmarkGateShared(b *testing.B) {
	var g gate
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = g.enter(ctx, false)
			g.leave(false)
		}
	})
}
