package embedded

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	bolt "go.etcd.io/bbolt"
)

// KV record: expiry, version, value. Versions come from the sequence of
// the top kv bucket, which is persistent and never goes back, so a version
// is never reused, not even for a key deleted and created again.

type kvrec struct {
	exp int64
	ver int64
	val []byte
}

func decodeKV(v []byte) (kvrec, error) {
	d := dec{b: v}
	r := kvrec{exp: d.i64(), ver: d.i64()}
	r.val = append([]byte(nil), d.b...)
	return r, d.err
}

func (r kvrec) encode() []byte {
	return append(enc(make([]byte, 0, 16+len(r.val))).i64(r.exp).i64(r.ver), r.val...)
}

func checkKV(op, ns, key string) error {
	if err := store.CheckNamespace(ns); err != nil {
		return fmt.Errorf("embedded: %s: %w", op, err)
	}
	if key == "" {
		return invalid(op, "empty key")
	}
	return nil
}

// current returns the live record of key, ok=false if missing or expired.
func (s *Store) kvCurrent(b *bolt.Bucket, key string) (kvrec, bool, error) {
	if b == nil {
		return kvrec{}, false, nil
	}
	v := b.Get([]byte(key))
	if v == nil {
		return kvrec{}, false, nil
	}
	r, err := decodeKV(v)
	if err != nil {
		return r, false, err
	}
	return r, live(v, s.nowNanos()), nil
}

// Get implements store.KV.
func (s *Store) Get(ctx context.Context, ns, key string) ([]byte, int64, error) {
	if err := checkKV("get", ns, key); err != nil {
		return nil, 0, err
	}
	var r kvrec
	var ok bool
	err := s.view("get", func(tx *bolt.Tx) error {
		var err error
		r, ok, err = s.kvCurrent(tx.Bucket(bKV).Bucket([]byte(ns)), key)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, fmt.Errorf("embedded: get %s/%s: %w", ns, key, store.ErrNotFound)
	}
	return r.val, r.ver, nil
}

// Put implements store.KV.
func (s *Store) Put(ctx context.Context, ns, key string, val []byte, ttl time.Duration) (int64, error) {
	return s.kvWrite(ctx, "put", ns, key, -1, val, ttl)
}

// CompareAndSwap implements store.KV.
func (s *Store) CompareAndSwap(ctx context.Context, ns, key string, expect int64, val []byte, ttl time.Duration) (int64, error) {
	if expect < 0 {
		return 0, invalid("cas", "negative version")
	}
	return s.kvWrite(ctx, "cas", ns, key, expect, val, ttl)
}

// kvWrite writes val; expect < 0 means unconditionally.
func (s *Store) kvWrite(ctx context.Context, op, ns, key string, expect int64, val []byte, ttl time.Duration) (int64, error) {
	if err := checkKV(op, ns, key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("embedded: %s: %w", op, err)
	}
	var ver int64
	err := s.hot(op, func(tx *bolt.Tx) error {
		top := tx.Bucket(bKV)
		b, err := top.CreateBucketIfNotExists([]byte(ns))
		if err != nil {
			return err
		}
		old, ok, err := s.kvCurrent(b, key)
		if err != nil {
			return err
		}
		if expect >= 0 {
			cur := int64(0)
			if ok {
				cur = old.ver
			}
			if cur != expect {
				return fmt.Errorf("%s/%s has version %d, not %d: %w", ns, key, cur, expect, store.ErrConflict)
			}
		}
		seq, err := top.NextSequence()
		if err != nil {
			return err
		}
		ver = int64(seq)
		rec := kvrec{exp: s.expiry(ttl), ver: ver, val: val}
		if err := b.Put([]byte(key), rec.encode()); err != nil {
			return err
		}
		// old.exp is that of the stored record, live or not: its index
		// entry is the one to move.
		return setExpiry(tx, kindKV, kvRef(ns, key), old.exp, rec.exp)
	})
	if err != nil {
		return 0, err
	}
	return ver, nil
}

// Delete implements store.KV.
func (s *Store) Delete(ctx context.Context, ns, key string) error {
	return s.kvDelete(ctx, "delete", ns, key, -1)
}

// CompareAndDelete implements store.KV.
func (s *Store) CompareAndDelete(ctx context.Context, ns, key string, expect int64) error {
	if expect <= 0 {
		return invalid("compare-and-delete", "version must be > 0")
	}
	return s.kvDelete(ctx, "compare-and-delete", ns, key, expect)
}

func (s *Store) kvDelete(ctx context.Context, op, ns, key string, expect int64) error {
	if err := checkKV(op, ns, key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: %s: %w", op, err)
	}
	return s.hot(op, func(tx *bolt.Tx) error {
		b := tx.Bucket(bKV).Bucket([]byte(ns))
		old, ok, err := s.kvCurrent(b, key)
		if err != nil {
			return err
		}
		if expect > 0 && (!ok || old.ver != expect) {
			return fmt.Errorf("%s/%s is not at version %d: %w", ns, key, expect, store.ErrConflict)
		}
		if b == nil || b.Get([]byte(key)) == nil {
			return nil
		}
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		return setExpiry(tx, kindKV, kvRef(ns, key), old.exp, 0)
	})
}

// List implements store.KV.
func (s *Store) List(ctx context.Context, ns, prefix, cursor string, limit int) ([]store.Item, string, error) {
	if err := store.CheckNamespace(ns); err != nil {
		return nil, "", fmt.Errorf("embedded: list: %w", err)
	}
	if limit <= 0 {
		return nil, "", invalid("list", "limit must be > 0")
	}
	var items []store.Item
	var next string
	err := s.view("list", func(tx *bolt.Tx) error {
		items, next = items[:0], ""
		b := tx.Bucket(bKV).Bucket([]byte(ns))
		if b == nil {
			return nil
		}
		now := s.nowNanos()
		start := []byte(prefix)
		if cursor > prefix {
			start = []byte(cursor)
		}
		c := b.Cursor()
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
			if string(k) <= cursor || !live(v, now) {
				continue
			}
			if len(items) == limit {
				next = items[len(items)-1].Key
				break
			}
			r, err := decodeKV(v)
			if err != nil {
				return err
			}
			items = append(items, store.Item{Key: string(k), Value: r.val, Version: r.ver})
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return items, next, nil
}

// MarkOnce implements store.Dedupe.
func (s *Store) MarkOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if key == "" || ttl <= 0 {
		return false, invalid("mark-once", "key must be set and ttl > 0")
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("embedded: mark-once: %w", err)
	}
	var first bool
	err := s.hot("mark-once", func(tx *bolt.Tx) error {
		b := tx.Bucket(bOnce)
		old := b.Get([]byte(key))
		first = !live(old, s.nowNanos())
		if !first {
			return nil
		}
		exp := s.expiry(ttl)
		if err := b.Put([]byte(key), u64key(uint64(exp))); err != nil {
			return err
		}
		return setExpiry(tx, kindOnce, []byte(key), expiryOf(old), exp)
	})
	return first, err
}

// Record implements store.Dedupe. A record lives in the bucket of
// MarkOnce's marks: its expiry, then the value.
func (s *Store) Record(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if key == "" || ttl <= 0 {
		return invalid("record", "key must be set and ttl > 0")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: record: %w", err)
	}
	return s.hot("record", func(tx *bolt.Tx) error {
		b := tx.Bucket(bOnce)
		old := b.Get([]byte(key))
		exp := s.expiry(ttl)
		if err := b.Put([]byte(key), append(u64key(uint64(exp)), val...)); err != nil {
			return err
		}
		return setExpiry(tx, kindOnce, []byte(key), expiryOf(old), exp)
	})
}

// Recorded implements store.Dedupe.
func (s *Store) Recorded(ctx context.Context, key string) ([]byte, bool, error) {
	if key == "" {
		return nil, false, invalid("recorded", "empty key")
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("embedded: recorded: %w", err)
	}
	var val []byte
	var ok bool
	err := s.view("recorded", func(tx *bolt.Tx) error {
		v := tx.Bucket(bOnce).Get([]byte(key))
		if ok = live(v, s.nowNanos()); ok {
			val = bytes.Clone(v[8:])
		}
		return nil
	})
	return val, ok, err
}

// Forget implements store.Dedupe.
func (s *Store) Forget(ctx context.Context, key string) error {
	return s.deleteExpiring(ctx, "forget", bOnce, kindOnce, key)
}

func (s *Store) deleteExpiring(ctx context.Context, op string, bucket []byte, kind byte, key string) error {
	if key == "" {
		return invalid(op, "empty key")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: %s: %w", op, err)
	}
	return s.hot(op, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		old := b.Get([]byte(key))
		if old == nil {
			return nil
		}
		exp := expiryOf(old)
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		return setExpiry(tx, kind, []byte(key), exp, 0)
	})
}

// Incr implements store.Counters.
func (s *Store) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if key == "" {
		return 0, invalid("incr", "empty key")
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("embedded: incr: %w", err)
	}
	var n int64
	err := s.hot("incr", func(tx *bolt.Tx) error {
		b := tx.Bucket(bCtr)
		old := b.Get([]byte(key))
		oldExp, exp := expiryOf(old), int64(0)
		if live(old, s.nowNanos()) {
			n, exp = int64(u64of(old[8:]))+delta, oldExp
		} else {
			n, exp = delta, s.expiry(ttl)
		}
		if err := b.Put([]byte(key), enc(nil).i64(exp).i64(n)); err != nil {
			return err
		}
		return setExpiry(tx, kindCtr, []byte(key), oldExp, exp)
	})
	return n, err
}

// GetCounter implements store.Counters.
func (s *Store) GetCounter(ctx context.Context, key string) (int64, error) {
	if key == "" {
		return 0, invalid("get-counter", "empty key")
	}
	var n int64
	err := s.view("get-counter", func(tx *bolt.Tx) error {
		n = 0
		if v := tx.Bucket(bCtr).Get([]byte(key)); live(v, s.nowNanos()) && len(v) == 16 {
			n = int64(u64of(v[8:]))
		}
		return nil
	})
	return n, err
}

// Acquire implements store.Leases.
func (s *Store) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	return s.lease(ctx, "acquire", name, owner, ttl, true)
}

// Renew implements store.Leases.
func (s *Store) Renew(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	return s.lease(ctx, "renew", name, owner, ttl, false)
}

func (s *Store) lease(ctx context.Context, op, name, owner string, ttl time.Duration, take bool) (bool, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return false, invalid(op, "name and owner must be set and ttl > 0")
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("embedded: %s: %w", op, err)
	}
	var ok bool
	err := s.hot(op, func(tx *bolt.Tx) error {
		b := tx.Bucket(bLease)
		old := b.Get([]byte(name))
		held := live(old, s.nowNanos())
		mine := held && string(old[8:]) == owner
		ok = mine || (take && !held)
		if !ok {
			return errNoop
		}
		exp := s.expiry(ttl)
		if err := b.Put([]byte(name), append(u64key(uint64(exp)), owner...)); err != nil {
			return err
		}
		return setExpiry(tx, kindLease, []byte(name), expiryOf(old), exp)
	})
	return ok, err
}

// Release implements store.Leases.
func (s *Store) Release(ctx context.Context, name, owner string) error {
	if name == "" || owner == "" {
		return invalid("release", "name and owner must be set")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: release: %w", err)
	}
	return s.hot("release", func(tx *bolt.Tx) error {
		b := tx.Bucket(bLease)
		old := b.Get([]byte(name))
		if old == nil || string(old[8:]) != owner {
			return errNoop
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		return setExpiry(tx, kindLease, []byte(name), expiryOf(old), 0)
	})
}
