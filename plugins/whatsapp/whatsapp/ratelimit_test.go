package whatsapp

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
)

const ms = time.Millisecond

func TestLimiterReserve(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		burst int
		// steps: advance the clock by adv, then reserve; want the wait.
		steps []struct{ adv, want time.Duration }
	}{
		{"20/s, burst 1: one every 50ms", 20, 1, []struct{ adv, want time.Duration }{
			{0, 0}, {0, 50 * ms}, {0, 100 * ms}, {0, 150 * ms}}},
		{"refills with time", 20, 1, []struct{ adv, want time.Duration }{
			{0, 0}, {0, 50 * ms}, {100 * ms, 0}, {0, 50 * ms}}},
		{"burst 3 then paced", 10, 3, []struct{ adv, want time.Duration }{
			{0, 0}, {0, 0}, {0, 0}, {0, 100 * ms}, {0, 200 * ms}}},
		{"idle time caps at the burst", 10, 2, []struct{ adv, want time.Duration }{
			{0, 0}, {time.Hour, 0}, {0, 0}, {0, 100 * ms}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock(goldenNow)
			l := newLimiter(tc.rate, tc.burst, clock.Now, clock.After)
			for i, s := range tc.steps {
				clock.Advance(s.adv)
				if got := l.reserve(); got != s.want {
					t.Fatalf("step %d: wait %s, want %s", i, got, s.want)
				}
			}
		})
	}
}

// TestLimiterConcurrent: with the clock stopped, n concurrent callers get
// exactly the slots 0, 50ms, ..., (n-1)*50ms: none shares a slot.
func TestLimiterConcurrent(t *testing.T) {
	clock := newTestClock(goldenNow)
	l := newLimiter(20, 1, clock.Now, clock.After)
	const n = 40
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		waits []time.Duration
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := l.reserve()
			mu.Lock()
			waits = append(waits, d)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	for i, d := range waits {
		if want := time.Duration(i) * 50 * ms; d != want {
			t.Fatalf("slot %d: %s, want %s", i, d, want)
		}
	}
}

func TestLimiterWait(t *testing.T) {
	t.Run("waits within the context", func(t *testing.T) {
		clock := newTestClock(goldenNow)
		l := newLimiter(20, 1, clock.Now, clock.After)
		for range 3 {
			if err := l.wait(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if got := clock.Waits(); len(got) != 2 || got[0] != 50*ms || got[1] != 100*ms {
			t.Fatalf("waits %v, want [50ms 100ms]", got)
		}
	})
	t.Run("deadline before the slot: rate limited at once, slot given back", func(t *testing.T) {
		clock := newTestClock(goldenNow)
		// One send per hour: the next slot is an hour away, the call's
		// deadline a minute.
		l := newLimiter(1.0/3600, 1, clock.Now, clock.After)
		_ = l.reserve()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := l.wait(ctx)
		if sdk.CodeOf(err) != sdk.CodeRateLimited || sdk.RetryAfterOf(err) != time.Hour {
			t.Fatalf("err %v, want rate limited after 1h", err)
		}
		if len(clock.Waits()) != 0 {
			t.Fatal("waited although the deadline could not be met")
		}
		if got := l.reserve(); got != time.Hour {
			t.Fatalf("next slot %s, want 1h (the refused caller's slot was returned)", got)
		}
	})
	t.Run("cancelled while waiting gives the slot back", func(t *testing.T) {
		clock := newTestClock(goldenNow)
		never := make(chan time.Time)
		l := newLimiter(1, 1, clock.Now, func(time.Duration) <-chan time.Time { return never })
		_ = l.reserve()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.wait(ctx) }()
		cancel()
		if err := <-done; err != context.Canceled {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		if got := l.reserve(); got != time.Second {
			t.Fatalf("next slot %s, want 1s", got)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		clock := newTestClock(goldenNow)
		l := newLimiter(1, 1, clock.Now, clock.After)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := l.wait(ctx); err != context.Canceled {
			t.Fatalf("err %v", err)
		}
		if got := l.reserve(); got != 0 {
			t.Fatalf("a cancelled call used a token: next wait %s", got)
		}
	})
}

// TestSendRateLimit: Send paces through the limiter (default 20/s for a
// coexistence number) rather than failing; the clock is stopped, so the
// waits asked for are the whole story.
func TestSendRateLimit(t *testing.T) {
	e := newEnv(t, wafake.Options{IgnoreWindow: true}, map[string]any{
		"enforce_window": false, "send_rate_per_second": nil, "send_burst": nil})
	for range 5 {
		if _, err := e.conn.Send(context.Background(), &sdk.Outbound{To: toCustomer, Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Duration{50 * ms, 100 * ms, 150 * ms, 200 * ms}
	got := e.clock.Waits()
	if len(got) != len(want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	if n := len(e.fake.Sent()); n != 5 {
		t.Fatalf("fake accepted %d, want 5", n)
	}
}

// TestMetaThroughputLimit: when Meta's own limit bites (the fake throttles
// at 2 per second of its clock), the send fails RateLimited with 1s.
func TestMetaThroughputLimit(t *testing.T) {
	e := newEnv(t, wafake.Options{IgnoreWindow: true, ThroughputMPS: 2}, map[string]any{"enforce_window": false})
	var errs []error
	for range 3 {
		_, err := e.conn.Send(context.Background(), &sdk.Outbound{To: toCustomer, Text: "x"})
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("first two: %v", errs[:2])
	}
	if sdk.CodeOf(errs[2]) != sdk.CodeRateLimited || sdk.RetryAfterOf(errs[2]) != time.Second || sdk.ReasonOf(errs[2]) != ReasonThroughputLimit {
		t.Fatalf("third: %v, want rate limited 1s", errs[2])
	}
	e.clock.Advance(time.Second)
	if _, err := e.conn.Send(context.Background(), &sdk.Outbound{To: toCustomer, Text: "x"}); err != nil {
		t.Fatalf("next second: %v", err)
	}
}

// TestReconfigureKeepsBucket: a reconfigure with the same limits must not
// hand out a fresh burst.
func TestReconfigureKeepsBucket(t *testing.T) {
	e := newEnv(t, wafake.Options{IgnoreWindow: true}, map[string]any{
		"enforce_window": false, "send_rate_per_second": 1, "send_burst": 1})
	rt, _ := e.conn.runtime()
	_ = rt.limiter.reserve()
	cfg := e.fake.ChannelConfig(map[string]any{"enforce_window": false, "send_rate_per_second": 1, "send_burst": 1})
	if err := e.conn.Configure(context.Background(), sdk.ConfigureRequest{Config: cfg, Host: sdk.HostFromBackend(e.host)}); err != nil {
		t.Fatal(err)
	}
	rt2, _ := e.conn.runtime()
	if rt2.limiter != rt.limiter {
		t.Fatal("limiter replaced")
	}
	if got := rt2.limiter.reserve(); got != time.Second {
		t.Fatalf("wait %s after reconfigure, want 1s", got)
	}
}
