package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/switchboard-hub/switchboard/hub/store"
)

func ms(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(d.Milliseconds(), 1)
}

// Leases.

func (s *Store) leaseKey(name string) string { return s.prefix + "lease:" + name }

var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`)

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Acquire implements store.Leases.
func (s *Store) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	return s.lease(ctx, "acquire", acquireScript, name, owner, ttl)
}

// Renew implements store.Leases.
func (s *Store) Renew(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	return s.lease(ctx, "renew", renewScript, name, owner, ttl)
}

func (s *Store) lease(ctx context.Context, op string, script *redis.Script, name, owner string, ttl time.Duration) (bool, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return false, invalid(op, "name and owner must be set and ttl > 0")
	}
	n, err := script.Run(ctx, s.c, []string{s.leaseKey(name)}, owner, ms(ttl)).Int()
	if err != nil {
		return false, s.wrap(op, err)
	}
	return n == 1, nil
}

// Release implements store.Leases.
func (s *Store) Release(ctx context.Context, name, owner string) error {
	if name == "" || owner == "" {
		return invalid("release", "name and owner must be set")
	}
	return s.wrap("release", releaseScript.Run(ctx, s.c, []string{s.leaseKey(name)}, owner).Err())
}

// KV. A value is a hash {v, ver}; versions come from a per-namespace
// sequence, so they are never reused, even after Delete or expiry. The
// index zset lists the keys for List; entries of expired keys are removed
// lazily by List.

func (s *Store) kvKeys(ns, key string) (val, idx, seq string) {
	base := s.prefix + "kv:{" + ns + "}:"
	return base + "k:" + key, base + "i", base + "seq"
}

func checkKV(op, ns, key string) error {
	if err := store.CheckNamespace(ns); err != nil {
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	if key == "" {
		return invalid(op, "empty key")
	}
	return nil
}

// kvSetScript: ARGV expect (-1: unconditional), value, ttl ms (0: none), key.
// Returns {1, version} or {0, current version}.
var kvSetScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
local expect = tonumber(ARGV[1])
if expect >= 0 and cur ~= expect then
  return {0, cur}
end
local ver = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'ver', ver)
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
redis.call('ZADD', KEYS[2], 0, ARGV[4])
return {1, ver}`)

// kvDelScript: ARGV expect (-1: unconditional), key. Returns 1, or 0 on
// a version mismatch.
var kvDelScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
local expect = tonumber(ARGV[1])
if expect >= 0 and (cur == 0 or cur ~= expect) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1`)

// kvPruneScript drops an index entry whose key is gone, atomically with the
// check so a concurrent Put cannot lose its entry.
var kvPruneScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 0`)

// Get implements store.KV.
func (s *Store) Get(ctx context.Context, ns, key string) ([]byte, int64, error) {
	if err := checkKV("get", ns, key); err != nil {
		return nil, 0, err
	}
	val, _, _ := s.kvKeys(ns, key)
	res, err := s.c.HMGet(ctx, val, "v", "ver").Result()
	if err != nil {
		return nil, 0, s.wrap("get", err)
	}
	v, ok1 := res[0].(string)
	ver, ok2 := res[1].(string)
	if !ok1 || !ok2 {
		return nil, 0, fmt.Errorf("redisstore: get %s/%s: %w", ns, key, store.ErrNotFound)
	}
	n, err := strconv.ParseInt(ver, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("redisstore: get %s/%s: bad version %q", ns, key, ver)
	}
	return []byte(v), n, nil
}

// Put implements store.KV.
func (s *Store) Put(ctx context.Context, ns, key string, val []byte, ttl time.Duration) (int64, error) {
	return s.kvSet(ctx, "put", ns, key, -1, val, ttl)
}

// CompareAndSwap implements store.KV.
func (s *Store) CompareAndSwap(ctx context.Context, ns, key string, expect int64, val []byte, ttl time.Duration) (int64, error) {
	if expect < 0 {
		return 0, invalid("cas", "negative version")
	}
	return s.kvSet(ctx, "cas", ns, key, expect, val, ttl)
}

func (s *Store) kvSet(ctx context.Context, op, ns, key string, expect int64, val []byte, ttl time.Duration) (int64, error) {
	if err := checkKV(op, ns, key); err != nil {
		return 0, err
	}
	v, idx, seq := s.kvKeys(ns, key)
	res, err := kvSetScript.Run(ctx, s.c, []string{v, idx, seq}, expect, val, ms(ttl), key).Int64Slice()
	if err != nil {
		return 0, s.wrap(op, err)
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("redisstore: %s: unexpected reply %v", op, res)
	}
	if res[0] == 0 {
		return 0, fmt.Errorf("redisstore: %s %s/%s has version %d, not %d: %w", op, ns, key, res[1], expect, store.ErrConflict)
	}
	return res[1], nil
}

// Delete implements store.KV.
func (s *Store) Delete(ctx context.Context, ns, key string) error {
	return s.kvDel(ctx, "delete", ns, key, -1)
}

// CompareAndDelete implements store.KV.
func (s *Store) CompareAndDelete(ctx context.Context, ns, key string, expect int64) error {
	if expect <= 0 {
		return invalid("compare-and-delete", "version must be > 0")
	}
	return s.kvDel(ctx, "compare-and-delete", ns, key, expect)
}

func (s *Store) kvDel(ctx context.Context, op, ns, key string, expect int64) error {
	if err := checkKV(op, ns, key); err != nil {
		return err
	}
	v, idx, _ := s.kvKeys(ns, key)
	n, err := kvDelScript.Run(ctx, s.c, []string{v, idx}, expect, key).Int()
	if err != nil {
		return s.wrap(op, err)
	}
	if n == 0 {
		return fmt.Errorf("redisstore: %s %s/%s is not at version %d: %w", op, ns, key, expect, store.ErrConflict)
	}
	return nil
}

// List implements store.KV.
func (s *Store) List(ctx context.Context, ns, prefix, cursor string, limit int) ([]store.Item, string, error) {
	if err := store.CheckNamespace(ns); err != nil {
		return nil, "", fmt.Errorf("redisstore: list: %w", err)
	}
	if limit <= 0 {
		return nil, "", invalid("list", "limit must be > 0")
	}
	_, idx, _ := s.kvKeys(ns, "")
	min := "-"
	if prefix != "" {
		min = "[" + prefix
	}
	if cursor != "" && cursor >= prefix {
		min = "(" + cursor
	}
	items := make([]store.Item, 0, limit)
	batch := int64(limit + 1)
	for {
		keys, err := s.c.ZRangeByLex(ctx, idx, &redis.ZRangeBy{Min: min, Max: "+", Count: batch}).Result()
		if err != nil {
			return nil, "", s.wrap("list", err)
		}
		var inPrefix []string
		for _, k := range keys {
			if !strings.HasPrefix(k, prefix) {
				break
			}
			inPrefix = append(inPrefix, k)
		}
		if len(inPrefix) > 0 {
			pipe := s.rdb.Pipeline()
			cmds := make([]*redis.SliceCmd, len(inPrefix))
			for i, k := range inPrefix {
				v, _, _ := s.kvKeys(ns, k)
				cmds[i] = pipe.HMGet(ctx, v, "v", "ver")
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, "", s.wrap("list", err)
			}
			for i, k := range inPrefix {
				res := cmds[i].Val()
				v, ok1 := res[0].(string)
				ver, ok2 := res[1].(string)
				if !ok1 || !ok2 {
					vk, _, _ := s.kvKeys(ns, k)
					if err := kvPruneScript.Run(ctx, s.c, []string{vk, idx}, k).Err(); err != nil && !errors.Is(err, redis.Nil) {
						return nil, "", s.wrap("list", err)
					}
					continue
				}
				if len(items) == limit {
					return items, items[limit-1].Key, nil
				}
				n, _ := strconv.ParseInt(ver, 10, 64)
				items = append(items, store.Item{Key: k, Value: []byte(v), Version: n})
			}
		}
		if len(inPrefix) < len(keys) || int64(len(keys)) < batch {
			return items, "", nil // past the prefix, or the end of the index
		}
		min = "(" + keys[len(keys)-1]
	}
}

// Dedupe.

func (s *Store) onceKey(key string) string { return s.prefix + "once:" + key }

// MarkOnce implements store.Dedupe.
func (s *Store) MarkOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if key == "" || ttl <= 0 {
		return false, invalid("mark-once", "key must be set and ttl > 0")
	}
	ok, err := s.c.SetNX(ctx, s.onceKey(key), 1, ttl).Result()
	return ok, s.wrap("mark-once", err)
}

// Record implements store.Dedupe.
func (s *Store) Record(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if key == "" || ttl <= 0 {
		return invalid("record", "key must be set and ttl > 0")
	}
	return s.wrap("record", s.c.Set(ctx, s.onceKey(key), val, ttl).Err())
}

// Recorded implements store.Dedupe.
func (s *Store) Recorded(ctx context.Context, key string) ([]byte, bool, error) {
	if key == "" {
		return nil, false, invalid("recorded", "empty key")
	}
	v, err := s.c.Get(ctx, s.onceKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.wrap("recorded", err)
	}
	return v, true, nil
}

// Forget implements store.Dedupe.
func (s *Store) Forget(ctx context.Context, key string) error {
	if key == "" {
		return invalid("forget", "empty key")
	}
	return s.wrap("forget", s.c.Del(ctx, s.onceKey(key)).Err())
}

// Counters.

func (s *Store) ctrKey(key string) string { return s.prefix + "ctr:" + key }

// incrScript sets the ttl only when the counter has none: a fixed window.
var incrScript = redis.NewScript(`
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v`)

// Incr implements store.Counters.
func (s *Store) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if key == "" {
		return 0, invalid("incr", "empty key")
	}
	n, err := incrScript.Run(ctx, s.c, []string{s.ctrKey(key)}, delta, ms(ttl)).Int64()
	return n, s.wrap("incr", err)
}

// GetCounter implements store.Counters.
func (s *Store) GetCounter(ctx context.Context, key string) (int64, error) {
	if key == "" {
		return 0, invalid("get-counter", "empty key")
	}
	n, err := s.c.Get(ctx, s.ctrKey(key)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, s.wrap("get-counter", err)
}
