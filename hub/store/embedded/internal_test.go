package embedded

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	bolt "go.etcd.io/bbolt"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openClock(t *testing.T) (*Store, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)}
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "sb.db"), Partitions: 2, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, clk
}

func keyCount(t *testing.T, s *Store, path ...[]byte) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(path[0])
		for _, p := range path[1:] {
			if b == nil {
				return nil
			}
			b = b.Bucket(p)
		}
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, _ []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestExpiryWithClockAndSweep(t *testing.T) {
	s, clk := openClock(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Put(ctx, "ns", "gone", []byte("x"), time.Hour)
	must(err)
	_, err = s.Put(ctx, "ns", "rewritten", []byte("x"), time.Hour)
	must(err)
	_, err = s.Put(ctx, "ns", "rewritten", []byte("y"), 0) // drops the ttl
	must(err)
	_, err = s.MarkOnce(ctx, "m", time.Hour)
	must(err)
	_, err = s.Incr(ctx, "c", 5, time.Hour)
	must(err)
	_, err = s.AppendTurn(ctx, "conv", []byte("t"), 20, time.Hour)
	must(err)
	_, err = s.Acquire(ctx, "l", "me", time.Hour)
	must(err)
	_, err = s.Append(ctx, "raw", []byte("r"), time.Hour)
	must(err)

	clk.Add(59 * time.Minute)
	if _, _, err := s.Get(ctx, "ns", "gone"); err != nil {
		t.Fatalf("expired early: %v", err)
	}
	clk.Add(2 * time.Minute)
	// Reads honour the ttl before any sweep.
	if _, _, err := s.Get(ctx, "ns", "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after ttl: %v", err)
	}
	if first, _ := s.MarkOnce(ctx, "m", time.Hour); !first {
		t.Fatal("mark did not expire")
	}
	if n, _ := s.GetCounter(ctx, "c"); n != 0 {
		t.Fatalf("counter = %d after ttl", n)
	}
	if h, _ := s.History(ctx, "conv"); len(h) != 0 {
		t.Fatal("history did not expire")
	}
	if ok, _ := s.Acquire(ctx, "l", "other", time.Minute); !ok {
		t.Fatal("lease did not expire")
	}
	must(s.Forget(ctx, "m"))
	must(s.Release(ctx, "l", "other"))

	must(s.Sweep())
	if n := keyCount(t, s, bKV, []byte("ns")); n != 1 {
		t.Fatalf("%d kv records after sweep, want 1 (rewritten without ttl)", n)
	}
	for name, b := range map[string][]byte{"once": bOnce, "ctr": bCtr, "hist": bHist, "lease": bLease, "exp": bExp} {
		if n := keyCount(t, s, b); n != 0 {
			t.Fatalf("%d %s records left after sweep", n, name)
		}
	}
	if n := keyCount(t, s, bLogs, []byte("raw")); n != 0 {
		t.Fatalf("%d log records past retention left after sweep", n)
	}
}

func TestReclaimWithClock(t *testing.T) {
	s, clk := openClock(t)
	ctx := context.Background()
	if _, err := s.Enqueue(ctx, "k", []byte("x")); err != nil {
		t.Fatal(err)
	}
	p := s.PartitionOf("k")
	if got, _ := s.Read(ctx, p, "a", 1, 0); len(got) != 1 {
		t.Fatal("read")
	}
	clk.Add(29 * time.Second)
	if got, _ := s.Reclaim(ctx, p, "b", 30*time.Second, 10); len(got) != 0 {
		t.Fatal("reclaimed before idle")
	}
	clk.Add(time.Second)
	got, err := s.Reclaim(ctx, p, "b", 30*time.Second, 10)
	if err != nil || len(got) != 1 || got[0].Deliveries != 2 {
		t.Fatalf("reclaim: %v %+v", err, got)
	}
}

func TestPartitionChangeRefusedWhileQueued(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sb.db")
	ctx := context.Background()
	s, err := Open(Options{Path: path, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := s.Enqueue(ctx, "k", []byte("x"))
	_ = s.Close()
	if _, err := Open(Options{Path: path, Partitions: 8}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("reopen with other partitions while queued: %v", err)
	}
	s, err = Open(Options{Path: path, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	p := s.PartitionOf("k")
	_, _ = s.Read(ctx, p, "c", 1, 0)
	if err := s.Ack(ctx, p, id); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s, err = Open(Options{Path: path, Partitions: 8})
	if err != nil {
		t.Fatalf("reopen drained queue with other partitions: %v", err)
	}
	_ = s.Close()
}

func TestFileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sb.db")
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(Options{Path: path, LockTimeout: 100 * time.Millisecond}); err == nil {
		t.Fatal("a second Open of a locked file succeeded")
	}
}

func TestBlockedReadEndsOnClose(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "sb.db")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(context.Background(), 0, "c", 1, time.Minute)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it block; the assertion does not depend on it
	_ = s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrClosed) {
			t.Fatalf("blocked Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Read did not end on Close")
	}
}

func TestBlockedReadEndsOnCancel(t *testing.T) {
	s, _ := openClock(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(ctx, 0, "c", 1, time.Minute)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Read after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Read ignored its context")
	}
}
