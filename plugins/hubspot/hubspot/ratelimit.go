package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Clock is the time source of the rate limiter and of record timestamps;
// tests inject a fake one.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Client-side rate limiting.
//
// HubSpot counts requests per account over a rolling 10 seconds and per
// day, and searches per second. Every hub replica talks to the same
// account, so the counters live in the host KV, which all replicas share.
// A sliding window is kept as per-bucket counts in one KV document (10
// buckets of a tenth of the window each) and updated with compare-and-swap.
// A request is counted in the bucket of its time and the sum covers one
// bucket more than the window, so the count never undercounts HubSpot's
// rolling window.
//
// To keep KV traffic low each replica reserves a small chunk of tokens at
// once and spends them locally while their bucket is current; what is left
// when the bucket moves on is handed back to the bucket it was counted in.
// The daily limit is a counter per calendar day in the account's zone.
//
// A 429 from HubSpot writes a cooldown into the window's document, so every
// replica stops until it has passed.
type limiter struct {
	clock   Clock
	kv      sdk.KV
	loc     *time.Location
	maxWait time.Duration

	mu      sync.Mutex
	windows map[string]*slidingWindow
	daily   *dailyWindow
}

type slidingWindow struct {
	key     string
	limit   int
	width   time.Duration // one bucket
	buckets int           // buckets per window
	chunk   int
	// local reservation
	have   int
	bucket int64
}

type dailyWindow struct {
	limit int
	chunk int
	have  int
	day   string
}

// windowDoc is a window's shared state in the KV.
type windowDoc struct {
	Buckets map[int64]int `json:"b,omitempty"`
	Count   int           `json:"n,omitempty"` // daily
	Until   int64         `json:"until,omitempty"`
}

func newLimiter(kv sdk.KV, clock Clock, loc *time.Location, rl RateLimitConfig) *limiter {
	chunk := func(limit, div int) int { return max(1, min(limit/div, 50)) }
	// Each window has one bucket more than its length needs: a call counted
	// early in the oldest bucket would otherwise leave the window up to a
	// bucket before a true rolling window (HubSpot's) forgets it, and the
	// next call could be the one over the limit.
	return &limiter{clock: clock, kv: kv, loc: loc, maxWait: time.Duration(rl.MaxWait),
		windows: map[string]*slidingWindow{
			policyTenSecond: {key: "ratelimit/ten_second", limit: rl.TenSecond, width: time.Second, buckets: 11, chunk: chunk(rl.TenSecond, 20)},
			// Searches are few and the limit is tiny: no chunking, so
			// replicas share it fairly.
			policySecondly: {key: "ratelimit/search", limit: rl.SearchPerSecond, width: 100 * time.Millisecond, buckets: 11, chunk: 1},
		},
		daily: &dailyWindow{limit: rl.Daily, chunk: chunk(rl.Daily, 1000)},
	}
}

// acquire takes one token from every window the call counts against,
// waiting up to maxWait (and the context's deadline) for budget, and
// returns a RateLimited error when the wait would be longer.
func (l *limiter) acquire(ctx context.Context, isSearch bool) error {
	for {
		wait, policy, err := l.tryAcquire(ctx, isSearch)
		if err != nil || wait <= 0 {
			return err
		}
		if wait > l.maxWait || !fitsDeadline(ctx, l.clock.Now(), wait) {
			return sdk.RateLimited(fmt.Errorf("hubspot client-side rate limit (%s) reached", policy), wait).
				WithReason("client_" + policyReason(policy))
		}
		if err := l.clock.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("hubspot: waiting for rate-limit budget: %w", err)
		}
	}
}

func policyReason(p string) string {
	switch p {
	case policyDaily:
		return "daily"
	case policySecondly:
		return "search"
	}
	return "ten_second"
}

func fitsDeadline(ctx context.Context, now time.Time, wait time.Duration) bool {
	dl, ok := ctx.Deadline()
	return !ok || now.Add(wait).Before(dl)
}

// tryAcquire returns 0 when the call may go, or how long to wait and why.
// Tokens taken from a window before another one refused are spent: the
// waste is one token and keeps the code free of cross-window rollback.
func (l *limiter) tryAcquire(ctx context.Context, isSearch bool) (time.Duration, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	order := []string{policyTenSecond}
	if isSearch {
		order = []string{policySecondly, policyTenSecond}
	}
	for _, p := range order {
		wait, err := l.takeSliding(ctx, l.windows[p])
		if err != nil || wait > 0 {
			return wait, p, err
		}
	}
	wait, err := l.takeDaily(ctx)
	return wait, policyDaily, err
}

func (l *limiter) takeSliding(ctx context.Context, w *slidingWindow) (time.Duration, error) {
	now := l.clock.Now()
	cur := now.UnixNano() / int64(w.width)
	if w.have > 0 && w.bucket == cur {
		w.have--
		return 0, nil
	}
	refund, refundBucket := w.have, w.bucket
	var wait time.Duration
	granted := 0
	err := l.update(ctx, w.key, 2*time.Duration(w.buckets+1)*w.width, func(d *windowDoc) bool {
		wait, granted = 0, 0
		changed := false
		if refund > 0 && d.Buckets[refundBucket] > 0 {
			d.Buckets[refundBucket] = max(0, d.Buckets[refundBucket]-refund)
			changed = true
		}
		for b := range d.Buckets {
			if b < cur-int64(w.buckets) || d.Buckets[b] == 0 {
				delete(d.Buckets, b)
				changed = true
			}
		}
		if until := time.UnixMilli(d.Until); d.Until > 0 && now.Before(until) {
			wait = until.Sub(now)
			return changed
		}
		used := 0
		for _, n := range d.Buckets {
			used += n
		}
		if used >= w.limit {
			wait = slidingWait(d.Buckets, used, w, now)
			return changed
		}
		grant := min(w.chunk, w.limit-used)
		if d.Buckets == nil {
			d.Buckets = map[int64]int{}
		}
		d.Buckets[cur] += grant
		granted = grant
		return true
	})
	if err != nil {
		return 0, err
	}
	// Any refund is settled now; keep what this round granted.
	w.have, w.bucket = 0, cur
	if wait > 0 {
		return wait, nil
	}
	w.have = granted - 1
	return 0, nil
}

// slidingWait is how long until enough of the oldest buckets leave the
// window for one more request to fit.
func slidingWait(b map[int64]int, used int, w *slidingWindow, now time.Time) time.Duration {
	oldest := int64(-1)
	for {
		next := int64(-1)
		for k := range b {
			if k > oldest && (next < 0 || k < next) {
				next = k
			}
		}
		if next < 0 {
			return w.width
		}
		oldest = next
		used -= b[next]
		if used < w.limit {
			free := time.Unix(0, (next+int64(w.buckets)+1)*int64(w.width))
			return max(free.Sub(now), time.Millisecond)
		}
	}
}

func (l *limiter) takeDaily(ctx context.Context) (time.Duration, error) {
	w := l.daily
	now := l.clock.Now()
	day := now.In(l.loc).Format("2006-01-02")
	if w.have > 0 && w.day == day {
		w.have--
		return 0, nil
	}
	var wait time.Duration
	granted := 0
	err := l.update(ctx, "ratelimit/daily/"+day, 49*time.Hour, func(d *windowDoc) bool {
		wait, granted = 0, 0
		if until := time.UnixMilli(d.Until); d.Until > 0 && now.Before(until) {
			wait = until.Sub(now)
			return false
		}
		if d.Count >= w.limit {
			wait = untilMidnight(now, l.loc).Sub(now)
			return false
		}
		grant := min(w.chunk, w.limit-d.Count)
		d.Count += grant
		granted = grant
		return true
	})
	if err != nil || wait > 0 {
		return wait, err
	}
	w.have, w.day = granted-1, day
	return 0, nil
}

// cooldown records that HubSpot refused with policy until the given time.
func (l *limiter) cooldown(ctx context.Context, policy string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key, ttl := "", time.Duration(0)
	switch policy {
	case policyDaily:
		key, ttl = "ratelimit/daily/"+l.clock.Now().In(l.loc).Format("2006-01-02"), 49*time.Hour
		l.daily.have = 0
	default:
		w := l.windows[policy]
		if w == nil {
			w = l.windows[policyTenSecond]
		}
		key, ttl = w.key, 2*time.Duration(w.buckets+1)*w.width
		w.have = 0
	}
	ttl = max(ttl, until.Sub(l.clock.Now())+time.Minute)
	// Best effort: a failed write only means other replicas find out from
	// HubSpot's own 429.
	_ = l.update(ctx, key, ttl, func(d *windowDoc) bool {
		if until.UnixMilli() <= d.Until {
			return false
		}
		d.Until = until.UnixMilli()
		return true
	})
}

// update applies fn to the document at key with compare-and-swap, retrying
// when another replica wrote in between. fn reports whether it changed d.
func (l *limiter) update(ctx context.Context, key string, ttl time.Duration, fn func(d *windowDoc) bool) error {
	for attempt := 0; attempt < 50; attempt++ {
		raw, ver, err := l.kv.Get(ctx, key)
		var d windowDoc
		switch {
		case errors.Is(err, sdk.ErrNotFound):
			ver = 0
		case err != nil:
			return sdk.Retryable(fmt.Errorf("hubspot rate limiter: read %s from the host KV: %w", key, err), 0)
		default:
			if err := json.Unmarshal(raw, &d); err != nil {
				d = windowDoc{} // corrupt: start over rather than block forever
			}
		}
		if !fn(&d) {
			return nil
		}
		b, _ := json.Marshal(d)
		_, err = l.kv.CompareAndSwap(ctx, key, ver, b, ttl)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sdk.ErrConflict) {
			return sdk.Retryable(fmt.Errorf("hubspot rate limiter: write %s to the host KV: %w", key, err), 0)
		}
	}
	return sdk.Retryable(fmt.Errorf("hubspot rate limiter: %s: too much contention on the host KV", key), 0)
}
