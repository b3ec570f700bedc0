package pipeline

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/hub/store/embedded"
)

// Two Conversations over one store stand for two replicas (or the admin
// API and the pipeline): each caches what it last wrote or read, and no
// write of one may be lost by the other's stale cache.
func TestConversationsCacheNeverLosesAWrite(t *testing.T) {
	st, err := embedded.Open(embedded.Options{Path: filepath.Join(t.TempDir(), "sb.db"), BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	a := &Conversations{KV: st, Now: time.Now}
	b := &Conversations{KV: st, Now: time.Now}
	init := func() *Conversation { return &Conversation{Instance: "zalo"} }

	if _, err := a.Update(ctx, "c1", init, func(c *Conversation) error { c.Turns++; c.Tags = []string{"a"}; return nil }); err != nil {
		t.Fatal(err)
	}
	// b writes behind a's back; a's cache is now stale.
	if _, err := b.Update(ctx, "c1", nil, func(c *Conversation) error { c.Score = 80; return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := a.Update(ctx, "c1", nil, func(c *Conversation) error { c.Turns++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got.Score != 80 || got.Turns != 2 {
		t.Fatalf("after a stale-cache update: score %d turns %d, want 80 and 2", got.Score, got.Turns)
	}

	// What a caller does to a returned conversation does not reach the cache.
	got.Tags[0] = "mutated"
	got.Score = -1
	again, _, err := a.Get(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if again.Tags[0] != "a" || again.Score != 80 {
		t.Fatalf("cache shared with a caller: tags %v score %d", again.Tags, again.Score)
	}

	// A deleted conversation is not resurrected from the cache.
	if err := st.Delete(ctx, NSConversations, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, "c1", nil, func(c *Conversation) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a deleted conversation without init: %v, want not found", err)
	}
	fresh, err := a.Update(ctx, "c1", init, func(c *Conversation) error { c.Turns++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Turns != 1 || fresh.Score != 0 {
		t.Fatalf("recreated conversation carries old state: %+v", fresh)
	}
}

// Concurrent increments through two caches: every update that succeeds is
// counted once. (Updates may give up under this artificial contention, as
// without the cache: in the hub a conversation is updated by one lane at a
// time.)
func TestConversationsCacheConcurrentUpdates(t *testing.T) {
	st, err := embedded.Open(embedded.Options{Path: filepath.Join(t.TempDir(), "sb.db"), BatchDelay: 100 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	replicas := []*Conversations{{KV: st, Now: time.Now}, {KV: st, Now: time.Now}}
	const each = 50
	var ok atomic.Int64
	var wg sync.WaitGroup
	for _, r := range replicas {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					_, err := r.Update(ctx, "c", func() *Conversation { return &Conversation{} }, func(c *Conversation) error { c.Turns++; return nil })
					if err == nil {
						ok.Add(1)
					} else if !strings.Contains(err.Error(), "too many concurrent updates") {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	got, _, err := replicas[0].Get(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if n := ok.Load(); n == 0 || int64(got.Turns) != n {
		t.Fatalf("turns %d, successful updates %d: a write was lost or counted twice", got.Turns, n)
	}
}

func BenchmarkConversationUpdate(b *testing.B) {
	st, err := embedded.Open(embedded.Options{Path: filepath.Join(b.TempDir(), "sb.db"), BatchDelay: 0})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	c := &Conversations{KV: st, Now: time.Now}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Update(ctx, "c", func() *Conversation { return &Conversation{} }, func(c *Conversation) error { c.Turns++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
