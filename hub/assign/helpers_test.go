package assign_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/hub/store/embedded"
	"github.com/switchboard-hub/switchboard/hub/store/redisstore"
	"github.com/switchboard-hub/switchboard/rules"
)

// clock is a controllable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var hcm = mustLoc("Asia/Ho_Chi_Minh")

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func redisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// requireRedis skips when no Redis answers, except in CI.
func requireRedis(t testing.TB) {
	t.Helper()
	o, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis at %s is required in CI: %v", redisURL(), err)
		}
		t.Skipf("no Redis at %s: %v", redisURL(), err)
	}
}

// redisPrefix is unique per test; cleanup deletes its keys.
func redisPrefix(t testing.TB) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "sbtest:assign:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		o, _ := redis.ParseURL(redisURL())
		c := redis.NewClient(o)
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for len(keys) > 0 {
			n := min(len(keys), 500)
			_ = c.Del(ctx, keys[:n]...).Err()
			keys = keys[n:]
		}
	})
	return prefix
}

func openRedis(t testing.TB, prefix string) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := redisstore.Open(ctx, redisstore.Options{URL: redisURL(), Prefix: prefix, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openEmbedded(t testing.TB) store.Store {
	t.Helper()
	s, err := embedded.Open(embedded.Options{Path: filepath.Join(t.TempDir(), "sb.db"), Partitions: 4, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// eachStore runs f on the embedded store and on Redis (when reachable).
func eachStore(t *testing.T, f func(t *testing.T, st store.Store)) {
	t.Run("embedded", func(t *testing.T) { f(t, openEmbedded(t)) })
	t.Run("redis", func(t *testing.T) {
		requireRedis(t)
		f(t, openRedis(t, redisPrefix(t)))
	})
}

func testRules(t testing.TB) *rules.Engine {
	t.Helper()
	eng, err := rules.NewEngine("testdata/rules")
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func newAssigner(t testing.TB, st store.Store, o assign.Options) *assign.Assigner {
	t.Helper()
	o.Store = st
	if o.Rules == nil {
		o.Rules = testRules(t).Current
	}
	a, err := assign.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
