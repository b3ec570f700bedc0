package zalo

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// countingKV counts the calls that reach the host.
type countingKV struct {
	sdk.KV
	gets atomic.Int64
}

func (c *countingKV) Get(ctx context.Context, key string) ([]byte, int64, error) {
	c.gets.Add(1)
	return c.KV.Get(ctx, key)
}

type counter struct{ N int }

func bump(ctx context.Context, kv sdk.KV) error {
	_, err := updateJSON(ctx, kv, "k", 0, func(r *counter, _ bool) (bool, error) { r.N++; return true, nil })
	return err
}

// Two plugin processes share the hub's KV; each remembers what it last
// saw. No increment may be lost, however stale a hint is.
func TestHintedKVLosesNoUpdate(t *testing.T) {
	ctx := context.Background()
	host := sdk.NewMemoryHost(nil)
	replicas := []sdk.KV{sdk.NewHintedKV(host), sdk.NewHintedKV(host)}
	const each = 200
	var wg sync.WaitGroup
	for _, kv := range replicas {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if err := bump(ctx, kv); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	var got counter
	if _, err := getJSON(ctx, host, "k", &got); err != nil {
		t.Fatal(err)
	}
	if got.N != 6*each {
		t.Fatalf("counter %d, want %d", got.N, 6*each)
	}

	// A deleted record is not brought back from a replica's memory.
	if err := replicas[1].Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := bump(ctx, replicas[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := getJSON(ctx, host, "k", &got); err != nil || got.N != 1 {
		t.Fatalf("after a delete: %d %v, want a fresh record at 1", got.N, err)
	}
}

// The sole writer does not read before it writes.
func TestHintedKVSkipsTheRead(t *testing.T) {
	ctx := context.Background()
	c := &countingKV{KV: sdk.NewMemoryHost(nil)}
	kv := sdk.NewHintedKV(c)
	for range 10 {
		if err := bump(ctx, kv); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.gets.Load(); n != 0 {
		t.Fatalf("%d reads for 10 updates by the only writer, want 0", n)
	}
	// Without the hints each update reads first.
	plain := &countingKV{KV: sdk.NewMemoryHost(nil)}
	for range 10 {
		if err := bump(ctx, plain); err != nil {
			t.Fatal(err)
		}
	}
	if n := plain.gets.Load(); n != 10 {
		t.Fatalf("plain KV: %d reads, want 10", n)
	}
}
