package embedded_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/hub/store/embedded"
	"github.com/switchboard-hub/switchboard/hub/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "switchboard.db")
		return func() store.Store {
			s, err := embedded.Open(embedded.Options{Path: path, Partitions: 4})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
	})
}

// The hub's default: writes batched (batch_delay 1ms), every commit synced.
func TestConformanceBatch(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "switchboard.db")
		return func() store.Store {
			s, err := embedded.Open(embedded.Options{Path: path, Partitions: 4, BatchDelay: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
	})
}

// The batched, unsynced configuration must behave the same.
func TestConformanceBatchNoSync(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "switchboard.db")
		return func() store.Store {
			s, err := embedded.Open(embedded.Options{Path: path, Partitions: 3, BatchDelay: time.Millisecond, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
	})
}

func BenchmarkStore(b *testing.B) {
	for _, cfg := range []struct {
		name string
		opts embedded.Options
	}{
		{"fsync", embedded.Options{}},
		{"batch", embedded.Options{BatchDelay: time.Millisecond}},
		{"nosync", embedded.Options{NoSync: true}},
	} {
		b.Run(cfg.name, func(b *testing.B) {
			storetest.Bench(b, func(b *testing.B) store.Store {
				o := cfg.opts
				o.Path = filepath.Join(b.TempDir(), "bench.db")
				s, err := embedded.Open(o)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = s.Close() })
				return s
			})
		})
	}
}
