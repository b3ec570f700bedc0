package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/hub/store/redisstore"
	"github.com/switchboard-hub/switchboard/hub/store/storetest"
)

func redisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// requireRedis skips when no Redis answers, except in CI, which guarantees one.
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

// testPrefix is unique per test; cleanup deletes its keys.
func testPrefix(t testing.TB) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "sbtest:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() { purge(t, prefix) })
	return prefix
}

func purge(t testing.TB, prefix string) {
	o, _ := redis.ParseURL(redisURL())
	c := redis.NewClient(o)
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Logf("purge %s: %v", prefix, err)
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Del(ctx, keys[:n]...).Err(); err != nil {
			t.Logf("purge %s: %v", prefix, err)
		}
		keys = keys[n:]
	}
}

func open(t testing.TB, prefix string) *redisstore.Store {
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

func TestConformance(t *testing.T) {
	requireRedis(t)
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		prefix := testPrefix(t)
		return func() store.Store { return open(t, prefix) }
	})
}

func BenchmarkStore(b *testing.B) {
	requireRedis(b)
	storetest.Bench(b, func(b *testing.B) store.Store { return open(b, testPrefix(b)) })
}
