package coalesce_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk/coalesce"
)

// gatedSender records every batch and blocks each until released.
type gatedSender struct {
	release chan struct{}
	started chan int // the size of each batch as it starts
	batches atomic.Int64
	items   atomic.Int64
	mu      sync.Mutex
	max     int
	inNow   int
	maxIn   int
}

func newGatedSender() *gatedSender {
	return &gatedSender{release: make(chan struct{}), started: make(chan int, 10000)}
}

func (g *gatedSender) send(items []int) []coalesce.Result[string] {
	g.batches.Add(1)
	g.items.Add(int64(len(items)))
	g.mu.Lock()
	g.inNow++
	g.maxIn = max(g.maxIn, g.inNow)
	g.max = max(g.max, len(items))
	g.mu.Unlock()
	g.started <- len(items)
	<-g.release
	g.mu.Lock()
	g.inNow--
	g.mu.Unlock()
	out := make([]coalesce.Result[string], len(items))
	for i, v := range items {
		if v%7 == 0 {
			out[i].Err = fmt.Errorf("item %d failed", v)
		} else {
			out[i].Val = fmt.Sprint(v)
		}
	}
	return out
}

func TestBatchesFormUnderConcurrencyInOrder(t *testing.T) {
	g := newGatedSender()
	b := coalesce.New(g.send, coalesce.Options[int]{MaxItems: 64, MaxInFlight: 3})
	const n = 500
	var wg sync.WaitGroup
	var started sync.WaitGroup
	started.Add(n)
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		wg.Go(func() {
			started.Done()
			v, err := b.Do(context.Background(), i)
			switch {
			case i%7 == 0:
				if err == nil || err.Error() != fmt.Sprintf("item %d failed", i) {
					errs <- fmt.Errorf("item %d: error %v, want its own", i, err)
				}
			case err != nil || v != fmt.Sprint(i):
				errs <- fmt.Errorf("item %d: got %q, %v", i, v, err)
			}
		})
	}
	// Hold the first batches until every caller has started: the rest
	// queue behind them and leave in few batches.
	<-g.started
	started.Wait()
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := g.items.Load(); got != n {
		t.Errorf("%d items sent, want %d", got, n)
	}
	if got := g.batches.Load(); got >= n/4 {
		t.Errorf("%d batches for %d concurrent items: they did not coalesce", got, n)
	}
	if g.max > 64 {
		t.Errorf("a batch of %d items, more than MaxItems 64", g.max)
	}
	if g.maxIn > 3 {
		t.Errorf("%d batches in flight at once, more than MaxInFlight 3", g.maxIn)
	}
	t.Logf("%d items in %d batches, largest %d", n, g.batches.Load(), g.max)
}

func TestLightLoadSendsAloneAtOnce(t *testing.T) {
	var sizes []int
	b := coalesce.New(func(items []int) []coalesce.Result[int] {
		sizes = append(sizes, len(items))
		return []coalesce.Result[int]{{Val: items[0] * 2}}
	}, coalesce.Options[int]{})
	for i := range 20 {
		if v, err := b.Do(context.Background(), i); err != nil || v != 2*i {
			t.Fatalf("Do(%d) = %d, %v", i, v, err)
		}
	}
	for _, s := range sizes {
		if s != 1 {
			t.Fatalf("sequential calls went out in batches of %v", sizes)
		}
	}
}

func TestCancelledCallerReturnsAtOnceOthersUnaffected(t *testing.T) {
	g := newGatedSender()
	b := coalesce.New(g.send, coalesce.Options[int]{MaxItems: 64, MaxInFlight: 1})
	// The first call occupies the only slot.
	first := make(chan error, 1)
	go func() { _, err := b.Do(context.Background(), 1); first <- err }()
	<-g.started
	// These queue behind it; one of them gives up.
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { _, err := b.Do(ctx, 2); gaveUp <- err }()
	others := make(chan error, 2)
	for _, v := range []int{3, 4} {
		go func() {
			s, err := b.Do(context.Background(), v)
			if err == nil && s != fmt.Sprint(v) {
				err = fmt.Errorf("item %d got %q", v, s)
			}
			others <- err
		}()
	}
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Error(err)
	}
	for range 2 {
		if err := <-others; err != nil {
			t.Error(err)
		}
	}
	// The cancelled item was dropped before its batch left.
	if got := g.items.Load(); got != 3 {
		t.Errorf("%d items sent, want 3 (the cancelled one dropped)", got)
	}
}

func TestCallerLeavingMidBatchDoesNotDisturbIt(t *testing.T) {
	g := newGatedSender()
	b := coalesce.New(g.send, coalesce.Options[int]{MaxInFlight: 1})
	block := make(chan error, 1)
	go func() { _, err := b.Do(context.Background(), 1); block <- err }()
	<-g.started
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	// Queued behind the blocked batch, its deadline passes while it waits.
	if _, err := b.Do(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired caller: %v", err)
	}
	close(g.release)
	if err := <-block; err != nil {
		t.Fatal(err)
	}
	if v, err := b.Do(context.Background(), 3); err != nil || v != "3" {
		t.Fatalf("after: %q, %v", v, err)
	}
}

func TestMaxBytes(t *testing.T) {
	g := newGatedSender()
	close(g.release)
	var mu sync.Mutex
	var sums []int
	b := coalesce.New(func(items []int) []coalesce.Result[string] {
		s := 0
		for _, v := range items {
			s += v
		}
		mu.Lock()
		sums = append(sums, s)
		mu.Unlock()
		return g.send(items)
	}, coalesce.Options[int]{MaxInFlight: 1, MaxBytes: 100, Size: func(v int) int { return v }})
	var wg sync.WaitGroup
	for _, v := range []int{150, 40, 40, 40, 30, 99, 1, 1} {
		wg.Go(func() { _, _ = b.Do(context.Background(), v) })
	}
	wg.Wait()
	for _, s := range sums {
		if s > 100 && s != 150 {
			t.Errorf("a batch of %d bytes, over MaxBytes 100 (only an item larger than the bound goes alone): %v", s, sums)
		}
	}
}

func TestShortAnswerFailsTheMissingItems(t *testing.T) {
	b := coalesce.New(func(items []int) []coalesce.Result[int] { return nil }, coalesce.Options[int]{})
	if _, err := b.Do(context.Background(), 1); err == nil {
		t.Fatal("an item without a result succeeded")
	}
}
