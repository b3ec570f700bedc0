package embedded

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	bolt "go.etcd.io/bbolt"
)

// The queue keeps, per partition, a bucket of entries keyed by a sequence
// number and a cursor (qcur) of the last entry handed out. Entries at or
// below the cursor are pending (delivered, not acked): Ack deletes them.
// This mirrors a Redis stream with one consumer group.

type qrec struct {
	enqueuedAt  int64
	deliveredAt int64
	deliveries  uint64
	consumer    string
	key         string
	payload     []byte
}

func (r qrec) encode() []byte {
	return enc(make([]byte, 0, 32+len(r.consumer)+len(r.key)+len(r.payload))).
		i64(r.enqueuedAt).i64(r.deliveredAt).u64(r.deliveries).str(r.consumer).str(r.key).bytes(r.payload)
}

func decodeQ(v []byte) (qrec, error) {
	d := dec{b: v}
	r := qrec{enqueuedAt: d.i64(), deliveredAt: d.i64(), deliveries: d.u64(), consumer: d.str(), key: d.str(), payload: d.bytes()}
	return r, d.err
}

func (r qrec) entry(p int, seq uint64) store.Entry {
	return store.Entry{
		ID:         strconv.FormatUint(seq, 10),
		Partition:  p,
		Key:        r.key,
		Payload:    r.payload,
		Deliveries: int(r.deliveries),
		EnqueuedAt: fromNanos(r.enqueuedAt),
	}
}

type pendKey struct {
	p        int
	consumer string
}

// pendState tracks a consumer's drain of its own pending entries after the
// Store was opened: Reads return them from cursor on until none is left.
// Reclaim shares it: entries it hands out move the cursor too, so a
// takeover (Reclaim, then Read) returns nothing twice. Its mu is held
// across the transaction that reads and moves the cursor; different
// partitions and consumers do not wait for each other (their writes share
// a batch).
type pendState struct {
	mu     sync.Mutex
	cursor uint64
	done   bool
}

func (s *Store) pendState(p int, consumer string) *pendState {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	k := pendKey{p, consumer}
	st := s.pend[k]
	if st == nil {
		st = &pendState{}
		s.pend[k] = st
	}
	return st
}

// Partitions implements store.Queue.
func (s *Store) Partitions() int { return s.parts }

// PartitionOf implements store.Queue.
func (s *Store) PartitionOf(key string) int { return store.PartitionFor(key, s.parts) }

func (s *Store) checkPartition(op string, p int) error {
	if p < 0 || p >= s.parts {
		return invalid(op, fmt.Sprintf("partition %d out of range [0,%d)", p, s.parts))
	}
	return nil
}

func partBucket(tx *bolt.Tx, p int) *bolt.Bucket {
	return tx.Bucket(bQueue).Bucket(u64key(uint64(p)))
}

func addLen(tx *bolt.Tx, p int, delta int64) error {
	b := tx.Bucket(bQLen)
	k := u64key(uint64(p))
	var n int64
	if v := b.Get(k); v != nil {
		n = int64(u64of(v))
	}
	return b.Put(k, u64key(uint64(n+delta)))
}

func lastDelivered(tx *bolt.Tx, p int) uint64 {
	if v := tx.Bucket(bQCur).Get(u64key(uint64(p))); v != nil {
		return u64of(v)
	}
	return 0
}

// Enqueue implements store.Queue.
func (s *Store) Enqueue(ctx context.Context, key string, payload []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("embedded: enqueue: %w", err)
	}
	p := s.PartitionOf(key)
	var seq uint64
	err := s.hot("enqueue", func(tx *bolt.Tx) error {
		b := partBucket(tx, p)
		var err error
		// One sequence for all partitions: ids are unique store-wide.
		if seq, err = tx.Bucket(bQueue).NextSequence(); err != nil {
			return err
		}
		rec := qrec{enqueuedAt: s.nowNanos(), key: key, payload: payload}
		if err := b.Put(u64key(seq), rec.encode()); err != nil {
			return err
		}
		return addLen(tx, p, 1)
	})
	if err != nil {
		return "", err
	}
	s.wake(p)
	return strconv.FormatUint(seq, 10), nil
}

// wake releases every Read blocked on partition p.
func (s *Store) wake(p int) {
	s.notifyMu.Lock()
	close(s.notify[p])
	s.notify[p] = make(chan struct{})
	s.notifyMu.Unlock()
}

func (s *Store) notifyCh(p int) <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.notify[p]
}

// Read implements store.Queue. It waits on a channel that Enqueue closes,
// so a blocked Read wakes as soon as an entry arrives, without polling.
func (s *Store) Read(ctx context.Context, p int, consumer string, max int, block time.Duration) ([]store.Entry, error) {
	if err := s.checkPartition("read", p); err != nil {
		return nil, err
	}
	if consumer == "" || max <= 0 {
		return nil, invalid("read", "consumer must be set and max > 0")
	}
	var timer *time.Timer
	for {
		// Take the channel before looking, so an Enqueue landing between
		// the look and the wait still wakes us.
		ch := s.notifyCh(p)
		out, err := s.readOnce(p, consumer, max)
		if err != nil || len(out) > 0 || block <= 0 {
			return out, err
		}
		if timer == nil {
			timer = time.NewTimer(block)
			defer timer.Stop()
		}
		select {
		case <-ch:
		case <-timer.C:
			return []store.Entry{}, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("embedded: read: %w", ctx.Err())
		case <-s.closing:
			return nil, fmt.Errorf("embedded: read: %w", store.ErrClosed)
		}
	}
}

type kv struct{ k, v []byte }

func (s *Store) readOnce(p int, consumer string, max int) ([]store.Entry, error) {
	st := s.pendState(p, consumer)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		// Nothing of our own left to drain: look before taking part in a
		// write, so an idle poll costs no commit.
		var fresh bool
		if err := s.view("read", func(tx *bolt.Tx) error {
			k, _ := partBucket(tx, p).Cursor().Last()
			fresh = k != nil && u64of(k) > lastDelivered(tx, p)
			return nil
		}); err != nil {
			return nil, err
		}
		if !fresh {
			return []store.Entry{}, nil
		}
	}
	var (
		out       []store.Entry
		newCursor uint64
		drained   bool
	)
	err := s.hot("read", func(tx *bolt.Tx) error {
		out, newCursor, drained = out[:0], 0, false
		now := s.nowNanos()
		b := partBucket(tx, p)
		last := lastDelivered(tx, p)
		var puts []kv
		if !st.done {
			c := b.Cursor()
			for k, v := c.Seek(u64key(st.cursor + 1)); k != nil && u64of(k) <= last && len(out) < max; k, v = c.Next() {
				r, err := decodeQ(v)
				if err != nil {
					return err
				}
				if r.consumer != consumer {
					continue
				}
				r.deliveries++
				r.deliveredAt = now
				out = append(out, r.entry(p, u64of(k)))
				puts = append(puts, kv{append([]byte(nil), k...), r.encode()})
				newCursor = u64of(k)
			}
			if len(out) > 0 {
				return putAll(b, puts)
			}
			drained = true
		}
		c := b.Cursor()
		for k, v := c.Seek(u64key(last + 1)); k != nil && len(out) < max; k, v = c.Next() {
			r, err := decodeQ(v)
			if err != nil {
				return err
			}
			r.deliveries = 1
			r.deliveredAt = now
			r.consumer = consumer
			out = append(out, r.entry(p, u64of(k)))
			puts = append(puts, kv{append([]byte(nil), k...), r.encode()})
			last = u64of(k)
		}
		if len(puts) == 0 {
			return errNoop
		}
		if err := putAll(b, puts); err != nil {
			return err
		}
		return tx.Bucket(bQCur).Put(u64key(uint64(p)), u64key(last))
	})
	if err != nil {
		return nil, err
	}
	if drained {
		st.done = true
	} else if newCursor > 0 {
		st.cursor = newCursor
	}
	if out == nil {
		out = []store.Entry{}
	}
	return out, nil
}

// putAll writes after iterating: bbolt cursors must not see their bucket
// change underneath them.
func putAll(b *bolt.Bucket, puts []kv) error {
	for _, p := range puts {
		if err := b.Put(p.k, p.v); err != nil {
			return err
		}
	}
	return nil
}

// Ack implements store.Queue.
func (s *Store) Ack(ctx context.Context, p int, ids ...string) error {
	if err := s.checkPartition("ack", p); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	seqs := make([][]byte, len(ids))
	for i, id := range ids {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return invalid("ack", fmt.Sprintf("entry id %q", id))
		}
		seqs[i] = u64key(n)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: ack: %w", err)
	}
	return s.hot("ack", func(tx *bolt.Tx) error {
		b := partBucket(tx, p)
		var n int64
		for _, k := range seqs {
			v := b.Get(k)
			if v == nil {
				continue
			}
			r, err := decodeQ(v)
			if err != nil {
				return err
			}
			if r.deliveredAt == 0 {
				continue // never delivered: not pending, as XACK would see it
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		return addLen(tx, p, -n)
	})
}

// Reclaim implements store.Queue. Until the consumer's own pending entries
// from before the Store was opened have been handed out (see Read), it
// includes them too, in order, so a takeover gets everything exactly once.
func (s *Store) Reclaim(ctx context.Context, p int, consumer string, minIdle time.Duration, count int) ([]store.Entry, error) {
	if err := s.checkPartition("reclaim", p); err != nil {
		return nil, err
	}
	if consumer == "" || count <= 0 {
		return nil, invalid("reclaim", "consumer must be set and max > 0")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded: reclaim: %w", err)
	}
	st := s.pendState(p, consumer)
	st.mu.Lock()
	defer st.mu.Unlock()
	var (
		out       []store.Entry
		visited   uint64
		walkedAll bool
	)
	err := s.update("reclaim", func(tx *bolt.Tx) error {
		out, visited, walkedAll = out[:0], 0, false
		now := s.nowNanos()
		b := partBucket(tx, p)
		last := lastDelivered(tx, p)
		var puts []kv
		c := b.Cursor()
		k, v := c.First()
		for ; k != nil && u64of(k) <= last && len(out) < count; k, v = c.Next() {
			seq := u64of(k)
			visited = seq
			r, err := decodeQ(v)
			if err != nil {
				return err
			}
			switch {
			case r.deliveredAt == 0:
				continue
			case r.consumer == consumer:
				if st.done || seq <= st.cursor {
					continue
				}
			case now-r.deliveredAt < int64(minIdle):
				continue
			}
			r.deliveries++
			r.deliveredAt = now
			r.consumer = consumer
			out = append(out, r.entry(p, seq))
			puts = append(puts, kv{append([]byte(nil), k...), r.encode()})
		}
		walkedAll = k == nil || u64of(k) > last
		if len(puts) == 0 {
			return errNoop
		}
		return putAll(b, puts)
	})
	if err != nil {
		return nil, err
	}
	if !st.done {
		st.cursor = max(st.cursor, visited)
		st.done = walkedAll
	}
	if out == nil {
		out = []store.Entry{}
	}
	return out, nil
}

// Depth implements store.Queue.
func (s *Store) Depth(ctx context.Context) (int64, error) {
	var n int64
	err := s.view("depth", func(tx *bolt.Tx) error {
		n = 0
		return tx.Bucket(bQLen).ForEach(func(_, v []byte) error {
			n += int64(u64of(v))
			return nil
		})
	})
	return n, err
}
