package hubspot

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// manualClock is a fake clock; Sleep advances it (and records the wait).
type manualClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *manualClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func (c *manualClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.slept = append(c.slept, d)
	c.mu.Unlock()
	return ctx.Err()
}

var start = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func testLimiter(kv sdk.KV, clock Clock, rl RateLimitConfig) *limiter {
	if rl.SearchPerSecond == 0 {
		rl.SearchPerSecond = 5
	}
	if rl.TenSecond == 0 {
		rl.TenSecond = 100
	}
	if rl.Daily == 0 {
		rl.Daily = 250000
	}
	return newLimiter(kv, clock, time.UTC, rl)
}

// TestLimiterNeverExceedsRollingWindows sends a steady stream faster than
// the limits allow, from one or two replicas sharing a KV, and checks every
// rolling window HubSpot would see.
func TestLimiterNeverExceedsRollingWindows(t *testing.T) {
	tests := []struct {
		name     string
		search   bool
		limit    int
		window   time.Duration
		replicas int
		step     time.Duration
	}{
		{"ten-second, one replica", false, 100, 10 * time.Second, 1, 37 * time.Millisecond},
		{"ten-second, three replicas", false, 100, 10 * time.Second, 3, 13 * time.Millisecond},
		{"search, one replica", true, 5, time.Second, 1, 29 * time.Millisecond},
		{"search, two replicas", true, 5, time.Second, 2, 7 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &manualClock{now: start}
			kv := sdk.NewMemoryHost(nil)
			var ls []*limiter
			for range tc.replicas {
				ls = append(ls, testLimiter(kv, clock, RateLimitConfig{MaxWait: 0}))
			}
			var sent []time.Time
			refused := 0
			for i := 0; clock.Now().Before(start.Add(6 * tc.window)); i++ {
				err := ls[i%len(ls)].acquire(context.Background(), tc.search)
				switch {
				case err == nil:
					sent = append(sent, clock.Now())
				case sdk.CodeOf(err) == sdk.CodeRateLimited && sdk.RetryAfterOf(err) > 0:
					refused++
				default:
					t.Fatalf("acquire: %v", err)
				}
				clock.Advance(tc.step)
			}
			if refused == 0 {
				t.Fatal("the stream was never limited: the test sends too slowly")
			}
			maxIn := 0
			for i := range sent {
				n := 0
				for j := i; j < len(sent) && sent[j].Sub(sent[i]) < tc.window; j++ {
					n++
				}
				maxIn = max(maxIn, n)
			}
			if maxIn > tc.limit {
				t.Errorf("%d requests within one rolling %v, limit %d", maxIn, tc.window, tc.limit)
			}
			// Conservative, not starving: at least 80% of the limit gets through.
			perWindow := float64(len(sent)) / 6
			if perWindow < 0.8*float64(tc.limit) {
				t.Errorf("only %.0f requests per window of %d allowed", perWindow, tc.limit)
			}
		})
	}
}

func TestLimiterWaitsShortGaps(t *testing.T) {
	clock := &manualClock{now: start}
	l := testLimiter(sdk.NewMemoryHost(nil), clock, RateLimitConfig{MaxWait: Duration(2 * time.Second)})
	for i := range 12 { // 5/s: the 6th and 11th searches wait for the window to roll
		if err := l.acquire(context.Background(), true); err != nil {
			t.Fatalf("search %d: %v", i, err)
		}
	}
	if len(clock.slept) != 2 {
		t.Fatalf("slept %v, want two waits", clock.slept)
	}
	for _, d := range clock.slept {
		// The window is one bucket longer than a second (it must never
		// forget a call before HubSpot's rolling second does).
		if d <= 0 || d > 1200*time.Millisecond {
			t.Errorf("wait %v, want within (0, 1.2s]", d)
		}
	}
	// A deadline shorter than the wait: refuse at once with the wait as
	// retry-after instead of sleeping into the deadline.
	clock = &manualClock{now: start}
	l = testLimiter(sdk.NewMemoryHost(nil), clock, RateLimitConfig{MaxWait: Duration(time.Minute)})
	for range 5 {
		if err := l.acquire(context.Background(), true); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), clock.Now().Add(time.Millisecond))
	defer cancel()
	err := l.acquire(ctx, true)
	if sdk.CodeOf(err) != sdk.CodeRateLimited || sdk.ReasonOf(err) != "client_search" || len(clock.slept) != 0 {
		t.Errorf("err %v (reason %q), slept %v", err, sdk.ReasonOf(err), clock.slept)
	}
	if ra := sdk.RetryAfterOf(err); ra <= 0 || ra > 1200*time.Millisecond {
		t.Errorf("retry after %v", ra)
	}
}

func TestLimiterDaily(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	clock := &manualClock{now: time.Date(2026, 1, 5, 16, 30, 0, 0, time.UTC)} // 23:30 in Ho Chi Minh City
	kv := sdk.NewMemoryHost(nil)
	rl := RateLimitConfig{TenSecond: 1000, Daily: 30, SearchPerSecond: 5, MaxWait: Duration(time.Minute)}
	a, b := newLimiter(kv, clock, loc, rl), newLimiter(kv, clock, loc, rl)
	ok := 0
	var err error
	for i := 0; i < 40; i++ {
		l := a
		if i%3 == 0 {
			l = b
		}
		if err = l.acquire(context.Background(), false); err != nil {
			break
		}
		ok++
		clock.Advance(time.Second)
	}
	if ok != 30 {
		t.Fatalf("%d requests allowed on a day limited to 30 (last error %v)", ok, err)
	}
	if sdk.CodeOf(err) != sdk.CodeRateLimited || sdk.ReasonOf(err) != "client_daily" {
		t.Fatalf("err %v", err)
	}
	if want := time.Date(2026, 1, 6, 0, 0, 0, 0, loc).Sub(clock.Now()); sdk.RetryAfterOf(err) != want {
		t.Errorf("retry after %v, want %v (the account's midnight)", sdk.RetryAfterOf(err), want)
	}
	clock.Advance(sdk.RetryAfterOf(err))
	if err := a.acquire(context.Background(), false); err != nil {
		t.Errorf("after midnight: %v", err)
	}
}

func TestLimiterCooldownIsShared(t *testing.T) {
	clock := &manualClock{now: start}
	kv := sdk.NewMemoryHost(nil)
	a := testLimiter(kv, clock, RateLimitConfig{})
	b := testLimiter(kv, clock, RateLimitConfig{})
	if err := b.acquire(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	// A saw a 429: B, which holds a local chunk, must stop too once it
	// goes back to the shared window.
	a.cooldown(context.Background(), policyTenSecond, start.Add(10*time.Second))
	clock.Advance(time.Second) // B's chunk is for the previous bucket now
	err := b.acquire(context.Background(), false)
	if sdk.CodeOf(err) != sdk.CodeRateLimited || sdk.RetryAfterOf(err) != 9*time.Second {
		t.Fatalf("after another replica's 429: %v", err)
	}
	clock.Advance(9 * time.Second)
	if err := b.acquire(context.Background(), false); err != nil {
		t.Errorf("after the cooldown: %v", err)
	}
}

// TestLimiterRefundsUnusedChunks: a replica that reserved a chunk and went
// quiet hands the rest back, so the other replica can use the budget.
func TestLimiterRefundsUnusedChunks(t *testing.T) {
	clock := &manualClock{now: start}
	kv := sdk.NewMemoryHost(nil)
	rl := RateLimitConfig{TenSecond: 200, Daily: 10000, SearchPerSecond: 5} // chunks of 10
	a, b := testLimiter(kv, clock, rl), testLimiter(kv, clock, rl)
	if err := a.acquire(context.Background(), false); err != nil { // reserves a chunk, uses 1
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if err := a.acquire(context.Background(), false); err != nil { // refunds the rest, reserves again
		t.Fatal(err)
	}
	got := 0
	for b.acquire(context.Background(), false) == nil {
		got++
	}
	if want := 200 - 1 - 10; got != want { // A used 1, then holds a new chunk of 10
		t.Errorf("B got %d of the budget, want %d", got, want)
	}
}

func BenchmarkLimiterAcquire(b *testing.B) {
	clock := &manualClock{now: start}
	l := testLimiter(sdk.NewMemoryHost(nil), clock, RateLimitConfig{TenSecond: 1 << 30, Daily: 1 << 30})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.acquire(ctx, false); err != nil {
			b.Fatal(err)
		}
		clock.Advance(time.Microsecond)
	}
}
