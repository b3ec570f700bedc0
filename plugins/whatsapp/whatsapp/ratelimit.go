package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// limiter is a token bucket for one phone number's sends. Callers reserve a
// slot and wait for it inside their context; a caller whose deadline comes
// before its slot gets a RateLimited error at once, so the hub requeues
// rather than the call timing out. The clock and the timer are injected so
// tests decide time (no wall-clock asserts).
type limiter struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time

	now   func() time.Time
	after func(time.Duration) <-chan time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time, after func(time.Duration) <-chan time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: now(), now: now, after: after}
}

// reserve takes one token and returns how long the caller must wait before
// using it (0: go now).
func (l *limiter) reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if el := now.Sub(l.last); el > 0 {
		l.tokens += el.Seconds() * l.rate
		if l.tokens > l.burst {
			l.tokens = l.burst
		}
		l.last = now
	}
	l.tokens--
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}

// unreserve gives back a token the caller will not use.
func (l *limiter) unreserve() {
	l.mu.Lock()
	l.tokens++
	if l.tokens > l.burst {
		l.tokens = l.burst
	}
	l.mu.Unlock()
}

var errSendRate = errors.New("whatsapp: client-side send rate limit")

// wait blocks until the caller may send, or returns why it may not.
func (l *limiter) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := l.reserve()
	if d <= 0 {
		return nil
	}
	// Context deadlines are wall-clock time whatever clock the bucket runs on.
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		l.unreserve()
		return sdk.RateLimited(fmt.Errorf("%w: next slot in %s is past the call's deadline", errSendRate, d), d).
			WithReason(ReasonThroughputLimit)
	}
	select {
	case <-l.after(d):
		return nil
	case <-ctx.Done():
		l.unreserve()
		return ctx.Err()
	}
}

// same reports whether l already enforces rate and burst, so a reconfigure
// with unchanged limits keeps the bucket's state.
func (l *limiter) same(rate float64, burst int) bool {
	return l != nil && l.rate == rate && l.burst == float64(burst)
}
