package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
)

var leaseTests = []test{
	{"Exclusive", testLeaseExclusive},
	{"Expiry", testLeaseExpiry},
	{"OneWinnerUnderRace", testLeaseRace},
}

func testLeaseExclusive(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	if !must(s.Acquire(ctx, "p0", "a", time.Minute)).of(t) {
		t.Fatal("a could not take a free lease")
	}
	if must(s.Acquire(ctx, "p0", "b", time.Minute)).of(t) {
		t.Fatal("b took a lease a holds")
	}
	if !must(s.Acquire(ctx, "p0", "a", time.Minute)).of(t) {
		t.Fatal("a could not re-acquire its own lease")
	}
	if must(s.Renew(ctx, "p0", "b", time.Minute)).of(t) {
		t.Fatal("b renewed a's lease")
	}
	if !must(s.Renew(ctx, "p0", "a", time.Minute)).of(t) {
		t.Fatal("a could not renew")
	}
	noErr(t, s.Release(ctx, "p0", "b")) // not b's: no effect
	if must(s.Acquire(ctx, "p0", "b", time.Minute)).of(t) {
		t.Fatal("b's release freed a's lease")
	}
	noErr(t, s.Release(ctx, "p0", "a"))
	if !must(s.Acquire(ctx, "p0", "b", time.Minute)).of(t) {
		t.Fatal("b could not take a released lease")
	}
	if must(s.Renew(ctx, "p0", "a", time.Minute)).of(t) {
		t.Fatal("a renewed a lease it released")
	}
	if !must(s.Acquire(ctx, "p1", "a", time.Minute)).of(t) {
		t.Fatal("leases are not independent")
	}
}

func testLeaseExpiry(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	if !must(s.Acquire(ctx, "l", "a", 150*time.Millisecond)).of(t) {
		t.Fatal("acquire")
	}
	eventually(t, expiryWait, "lease expires", func() bool {
		return must(s.Acquire(ctx, "l", "b", time.Minute)).of(t)
	})
	if must(s.Renew(ctx, "l", "a", time.Minute)).of(t) {
		t.Fatal("a renewed a lease that expired and was taken")
	}
}

func testLeaseRace(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.Acquire(ctx, "race", "owner-"+strconv.Itoa(i), time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d owners won the lease", wins.Load())
	}
}

var kvTests = []test{
	{"GetPutVersions", testKVBasic},
	{"CompareAndSwap", testKVCAS},
	{"NoVersionReuseAfterDelete", testKVNoABA},
	{"TTL", testKVTTL},
	{"CASRaceOneWinner", testKVCASRace},
	{"CASRetryLoop", testKVCASLoop},
	{"List", testKVList},
	{"Namespaces", testKVNamespaces},
}

func testKVBasic(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	_, _, err := s.Get(ctx, "conv", "1")
	wantErr(t, err, store.ErrNotFound)
	v1 := must(s.Put(ctx, "conv", "1", []byte("one"), 0)).of(t)
	if v1 <= 0 {
		t.Fatalf("version %d", v1)
	}
	val, ver, err := s.Get(ctx, "conv", "1")
	noErr(t, err)
	if string(val) != "one" || ver != v1 {
		t.Fatalf("got %q@%d, want one@%d", val, ver, v1)
	}
	v2 := must(s.Put(ctx, "conv", "1", []byte("two"), 0)).of(t)
	if v2 <= v1 {
		t.Fatalf("version did not increase: %d then %d", v1, v2)
	}
	noErr(t, s.Delete(ctx, "conv", "1"))
	noErr(t, s.Delete(ctx, "conv", "1")) // missing: fine
	_, _, err = s.Get(ctx, "conv", "1")
	wantErr(t, err, store.ErrNotFound)
	// Empty values are values.
	must(s.Put(ctx, "conv", "empty", nil, 0)).of(t)
	val, _, err = s.Get(ctx, "conv", "empty")
	noErr(t, err)
	if len(val) != 0 {
		t.Fatalf("empty value came back as %q", val)
	}
}

func testKVCAS(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	v1 := must(s.CompareAndSwap(ctx, "tok", "zalo", 0, []byte("r1"), 0)).of(t)
	_, err := s.CompareAndSwap(ctx, "tok", "zalo", 0, []byte("x"), 0)
	wantErr(t, err, store.ErrConflict)
	v2 := must(s.CompareAndSwap(ctx, "tok", "zalo", v1, []byte("r2"), 0)).of(t)
	if v2 <= v1 {
		t.Fatalf("version %d after %d", v2, v1)
	}
	_, err = s.CompareAndSwap(ctx, "tok", "zalo", v1, []byte("stale"), 0)
	wantErr(t, err, store.ErrConflict)
	_, err = s.CompareAndSwap(ctx, "tok", "missing", v1, []byte("x"), 0)
	wantErr(t, err, store.ErrConflict)
	val, ver, _ := s.Get(ctx, "tok", "zalo")
	if string(val) != "r2" || ver != v2 {
		t.Fatalf("got %q@%d after a failed CAS", val, ver)
	}
	wantErr(t, s.CompareAndDelete(ctx, "tok", "zalo", v1), store.ErrConflict)
	wantErr(t, s.CompareAndDelete(ctx, "tok", "missing", v1), store.ErrConflict)
	noErr(t, s.CompareAndDelete(ctx, "tok", "zalo", v2))
	_, _, err = s.Get(ctx, "tok", "zalo")
	wantErr(t, err, store.ErrNotFound)
}

func testKVNoABA(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	seen := map[int64]bool{}
	var last int64
	for i := 0; i < 5; i++ {
		v := must(s.CompareAndSwap(ctx, "ns", "k", 0, []byte("x"), 0)).of(t)
		if seen[v] || v <= last {
			t.Fatalf("version %d reused or not increasing (last %d)", v, last)
		}
		seen[v], last = true, v
		noErr(t, s.Delete(ctx, "ns", "k"))
	}
	// A holder of the first incarnation's version loses against a re-created key.
	v := must(s.Put(ctx, "ns", "k", []byte("new"), 0)).of(t)
	for old := range seen {
		if _, err := s.CompareAndSwap(ctx, "ns", "k", old, []byte("stale"), 0); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("CAS with an old incarnation's version %d (current %d): %v", old, v, err)
		}
	}
}

func testKVTTL(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	must(s.Put(ctx, "ns", "short", []byte("x"), 150*time.Millisecond)).of(t)
	must(s.Put(ctx, "ns", "long", []byte("y"), time.Hour)).of(t)
	if _, _, err := s.Get(ctx, "ns", "short"); err != nil {
		t.Fatalf("fresh key: %v", err)
	}
	eventually(t, expiryWait, "key expires", func() bool {
		_, _, err := s.Get(ctx, "ns", "short")
		return errors.Is(err, store.ErrNotFound)
	})
	if items, _ := must2(t)(s.List(ctx, "ns", "", "", 10)); len(items) != 1 || items[0].Key != "long" {
		t.Fatalf("List shows %v after expiry", items)
	}
	// Expired counts as missing for CAS.
	must(s.CompareAndSwap(ctx, "ns", "short", 0, []byte("z"), 0)).of(t)
	// Put without ttl removes an earlier ttl.
	must(s.Put(ctx, "ns", "keep", []byte("a"), 150*time.Millisecond)).of(t)
	must(s.Put(ctx, "ns", "keep", []byte("b"), 0)).of(t)
	must(s.Put(ctx, "ns", "probe", []byte("p"), 150*time.Millisecond)).of(t)
	eventually(t, expiryWait, "probe expires", func() bool {
		_, _, err := s.Get(ctx, "ns", "probe")
		return errors.Is(err, store.ErrNotFound)
	})
	if _, _, err := s.Get(ctx, "ns", "keep"); err != nil {
		t.Fatalf("key rewritten without ttl expired: %v", err)
	}
}

func must2(t *testing.T) func([]store.Item, string, error) ([]store.Item, string) {
	return func(items []store.Item, next string, err error) ([]store.Item, string) {
		t.Helper()
		noErr(t, err)
		return items, next
	}
}

func testKVCASRace(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	base := must(s.Put(ctx, "tok", "refresh", []byte("r0"), 0)).of(t)
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.CompareAndSwap(ctx, "tok", "refresh", base, []byte(fmt.Sprintf("r-%d", i)), 0)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, store.ErrConflict):
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d CAS winners, want exactly 1", wins.Load())
	}
}

func testKVCASLoop(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	const workers, each = 8, 15
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				for {
					val, ver, err := s.Get(ctx, "c", "n")
					if errors.Is(err, store.ErrNotFound) {
						val, ver, err = []byte("0"), 0, nil
					}
					if err != nil {
						t.Error(err)
						return
					}
					n, _ := strconv.Atoi(string(val))
					_, err = s.CompareAndSwap(ctx, "c", "n", ver, []byte(strconv.Itoa(n+1)), 0)
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrConflict) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	val, _, err := s.Get(ctx, "c", "n")
	noErr(t, err)
	if string(val) != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %s, want %d (lost updates)", val, workers*each)
	}
}

func testKVList(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	for _, k := range []string{"a/3", "a/1", "b/1", "a/2", "a/5", "a/4", "ab"} {
		must(s.Put(ctx, "ns", k, []byte("v"+k), 0)).of(t)
	}
	var keys []string
	cursor, pages := "", 0
	for {
		items, next := must2(t)(s.List(ctx, "ns", "a/", cursor, 2))
		pages++
		for _, it := range items {
			if string(it.Value) != "v"+it.Key || it.Version <= 0 {
				t.Fatalf("item %+v", it)
			}
			keys = append(keys, it.Key)
		}
		if next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("List does not end")
		}
		cursor = next
	}
	if fmt.Sprint(keys) != "[a/1 a/2 a/3 a/4 a/5]" || pages != 3 {
		t.Fatalf("listed %v in %d pages", keys, pages)
	}
	all, next := must2(t)(s.List(ctx, "ns", "", "", 100))
	if len(all) != 7 || next != "" {
		t.Fatalf("full list: %d items, next %q", len(all), next)
	}
	exact, next := must2(t)(s.List(ctx, "ns", "", "", 7))
	if len(exact) != 7 || next != "" {
		t.Fatalf("list of exactly limit items: %d, next %q", len(exact), next)
	}
	none, next := must2(t)(s.List(ctx, "ns", "zz", "", 10))
	if len(none) != 0 || next != "" {
		t.Fatalf("list of nothing: %v %q", none, next)
	}
}

func testKVNamespaces(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	must(s.Put(ctx, "one", "k", []byte("1"), 0)).of(t)
	must(s.Put(ctx, "two", "k", []byte("2"), 0)).of(t)
	v, _, _ := s.Get(ctx, "one", "k")
	w, _, _ := s.Get(ctx, "two", "k")
	if string(v) != "1" || string(w) != "2" {
		t.Fatalf("namespaces mixed: %q %q", v, w)
	}
	if items, _ := must2(t)(s.List(ctx, "one", "", "", 10)); len(items) != 1 {
		t.Fatalf("namespace one lists %d items", len(items))
	}
	_, err := s.Put(ctx, "", "k", nil, 0)
	wantErr(t, err, store.ErrInvalid)
	_, err = s.Put(ctx, "a{b}", "k", nil, 0)
	wantErr(t, err, store.ErrInvalid)
	_, _, err = s.Get(ctx, "ns", "")
	wantErr(t, err, store.ErrInvalid)
}

var dedupeTests = []test{
	{"MarkOnceAndForget", testDedupe},
	{"TTL", testDedupeTTL},
	{"OneFirstUnderRace", testDedupeRace},
	{"Records", testRecords},
}

func testRecords(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	if _, ok, err := s.Recorded(ctx, "fx:1"); err != nil || ok {
		t.Fatalf("unrecorded key: ok %v err %v", ok, err)
	}
	noErr(t, s.Record(ctx, "fx:1", []byte("contact-42"), time.Hour))
	v, ok, err := s.Recorded(ctx, "fx:1")
	if err != nil || !ok || string(v) != "contact-42" {
		t.Fatalf("recorded: %q %v %v", v, ok, err)
	}
	noErr(t, s.Record(ctx, "fx:1", []byte("contact-43"), time.Hour))
	if v, _, _ := s.Recorded(ctx, "fx:1"); string(v) != "contact-43" {
		t.Fatalf("record not replaced: %q", v)
	}
	noErr(t, s.Record(ctx, "fx:empty", nil, time.Hour))
	if v, ok, err := s.Recorded(ctx, "fx:empty"); err != nil || !ok || len(v) != 0 {
		t.Fatalf("empty record: %q %v %v", v, ok, err)
	}
	// A record is a remembered key: MarkOnce is not first on it, and
	// Forget removes it.
	if must(s.MarkOnce(ctx, "fx:1", time.Hour)).of(t) {
		t.Fatal("MarkOnce first on a recorded key")
	}
	noErr(t, s.Forget(ctx, "fx:1"))
	if _, ok, _ := s.Recorded(ctx, "fx:1"); ok {
		t.Fatal("record survives Forget")
	}
	noErr(t, s.Record(ctx, "fx:short", []byte("x"), 150*time.Millisecond))
	eventually(t, expiryWait, "record expires", func() bool {
		_, ok, err := s.Recorded(ctx, "fx:short")
		return err == nil && !ok
	})
	wantErr(t, s.Record(ctx, "k", []byte("x"), 0), store.ErrInvalid)
	wantErr(t, s.Record(ctx, "", []byte("x"), time.Hour), store.ErrInvalid)
	_, _, err = s.Recorded(ctx, "")
	wantErr(t, err, store.ErrInvalid)
}

func testDedupe(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	if !must(s.MarkOnce(ctx, "msg:1", time.Hour)).of(t) {
		t.Fatal("first mark not first")
	}
	if must(s.MarkOnce(ctx, "msg:1", time.Hour)).of(t) {
		t.Fatal("second mark first")
	}
	if !must(s.MarkOnce(ctx, "msg:2", time.Hour)).of(t) {
		t.Fatal("keys not independent")
	}
	noErr(t, s.Forget(ctx, "msg:1"))
	noErr(t, s.Forget(ctx, "never"))
	if !must(s.MarkOnce(ctx, "msg:1", time.Hour)).of(t) {
		t.Fatal("mark after Forget not first")
	}
	_, err := s.MarkOnce(ctx, "k", 0)
	wantErr(t, err, store.ErrInvalid)
}

func testDedupeTTL(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	must(s.MarkOnce(ctx, "m", 150*time.Millisecond)).of(t)
	if must(s.MarkOnce(ctx, "m", 150*time.Millisecond)).of(t) {
		t.Fatal("mark first again before ttl")
	}
	eventually(t, expiryWait, "dedupe key expires", func() bool {
		return must(s.MarkOnce(ctx, "m", time.Hour)).of(t)
	})
}

func testDedupeRace(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := s.MarkOnce(ctx, "provider-msg", time.Hour); err != nil {
				t.Error(err)
			} else if ok {
				firsts.Add(1)
			}
		}()
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Fatalf("%d callers were first", firsts.Load())
	}
}

var counterTests = []test{
	{"Incr", testCounter},
	{"FixedWindow", testCounterWindow},
	{"Concurrent", testCounterConcurrent},
}

func testCounter(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	if n := must(s.GetCounter(ctx, "c")).of(t); n != 0 {
		t.Fatalf("missing counter = %d", n)
	}
	for i, want := range []int64{1, 3, -2} {
		delta := []int64{1, 2, -5}[i]
		if n := must(s.Incr(ctx, "c", delta, 0)).of(t); n != want {
			t.Fatalf("Incr(%d) = %d, want %d", delta, n, want)
		}
	}
	if n := must(s.GetCounter(ctx, "c")).of(t); n != -2 {
		t.Fatalf("GetCounter = %d", n)
	}
}

func testCounterWindow(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	if n := must(s.Incr(ctx, "w", 1, 200*time.Millisecond)).of(t); n != 1 {
		t.Fatalf("first Incr = %d", n)
	}
	// Increments inside the window must not extend it: keep incrementing
	// and expect the window to end anyway.
	eventually(t, expiryWait, "fixed window resets while incremented", func() bool {
		return must(s.Incr(ctx, "w", 1, 200*time.Millisecond)).of(t) == 1
	})
	eventually(t, expiryWait, "counter expires", func() bool {
		return must(s.GetCounter(ctx, "w")).of(t) == 0
	})
}

func testCounterConcurrent(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 30; j++ {
				if _, err := s.Incr(ctx, "budget", 2, time.Hour); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := must(s.GetCounter(ctx, "budget")).of(t); n != 600 {
		t.Fatalf("counter = %d, want 600", n)
	}
}
