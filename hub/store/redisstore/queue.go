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

// Entry ids are "<partition>/<stream id>": stream ids alone repeat across
// partitions, and the interface promises ids unique store-wide.

func (s *Store) qKey(p int) string { return s.prefix + "q:{" + strconv.Itoa(p) + "}" }

func entryID(p int, streamID string) string { return strconv.Itoa(p) + "/" + streamID }

func (s *Store) streamID(op string, p int, id string) (string, error) {
	ps, sid, ok := strings.Cut(id, "/")
	if !ok || ps != strconv.Itoa(p) || sid == "" {
		return "", invalid(op, fmt.Sprintf("entry id %q is not of partition %d", id, p))
	}
	return sid, nil
}

// idTime is the enqueue time Redis encoded in a stream id (milliseconds).
func idTime(sid string) time.Time {
	ms, _, _ := strings.Cut(sid, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

func (s *Store) createGroup(ctx context.Context, p int) error {
	// "0": entries enqueued before the group existed are delivered too.
	err := s.rdb.XGroupCreateMkStream(ctx, s.qKey(p), s.group, "0").Err()
	if err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil
	}
	return s.wrap("create consumer group", err)
}

func isNoGroup(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOGROUP")
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

// Enqueue implements store.Queue. XADD is acknowledged by the primary once
// applied; how much survives a Redis crash is the server's appendfsync
// setting (use "everysec" or "always" for the delivery promise).
func (s *Store) Enqueue(ctx context.Context, key string, payload []byte) (string, error) {
	p := s.PartitionOf(key)
	sid, err := s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: s.qKey(p),
		ID:     "*",
		Values: []any{"k", key, "p", payload},
	}).Result()
	if err != nil {
		return "", s.wrap("enqueue", err)
	}
	return entryID(p, sid), nil
}

type pendKey struct {
	p        int
	consumer string
}

// pendState tracks a consumer's drain of its own pending entries (those a
// previous run under the same name left unacked), read from cursor on.
type pendState struct {
	cursor string
	done   bool
}

func (s *Store) pendFor(p int, consumer string) *pendState {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := pendKey{p, consumer}
	st := s.pend[k]
	if st == nil {
		st = &pendState{cursor: "0"}
		s.pend[k] = st
	}
	return st
}

// Read implements store.Queue.
func (s *Store) Read(ctx context.Context, p int, consumer string, count int, block time.Duration) ([]store.Entry, error) {
	if err := s.checkPartition("read", p); err != nil {
		return nil, err
	}
	if consumer == "" || count <= 0 {
		return nil, invalid("read", "consumer must be set and max > 0")
	}
	st := s.pendFor(p, consumer)
	s.mu.Lock()
	cursor, done := st.cursor, st.done
	s.mu.Unlock()
	if !done {
		out, last, err := s.readPending(ctx, p, consumer, cursor, count)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if last != "" {
			st.cursor = last
		} else {
			st.done = true
		}
		s.mu.Unlock()
		if len(out) > 0 || last != "" {
			return out, nil
		}
	}
	// Redis cannot be interrupted in a blocked XREADGROUP when ctx is
	// cancelled, so long blocks are split into slices of at most blockSlice
	// and ctx is checked between them.
	deadline := time.Now().Add(block)
	var res []redis.XStream
	for {
		wait := time.Until(deadline)
		if block <= 0 || wait <= 0 {
			wait = -1 // negative omits BLOCK: do not wait. Never 0: that is "forever".
		} else {
			wait = min(max(wait, time.Millisecond), blockSlice)
		}
		var err error
		res, err = s.readNew(ctx, p, consumer, count, wait)
		if err != nil {
			return nil, err
		}
		if len(res) > 0 || wait < 0 || !time.Now().Before(deadline) {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("redisstore: read: %w", err)
		}
	}
	out := make([]store.Entry, 0, count)
	for _, str := range res {
		for _, m := range str.Messages {
			out = append(out, s.entry(p, m, 1))
		}
	}
	return out, nil
}

// blockSlice bounds one blocked XREADGROUP (see Read).
const blockSlice = time.Second

// readNew reads entries never delivered (">"), waiting up to wait (< 0: not).
func (s *Store) readNew(ctx context.Context, p int, consumer string, count int, wait time.Duration) ([]redis.XStream, error) {
	args := &redis.XReadGroupArgs{
		Group: s.group, Consumer: consumer,
		Streams: []string{s.qKey(p), ">"},
		Count:   int64(count), Block: wait,
	}
	res, err := s.rdb.XReadGroup(ctx, args).Result()
	if isNoGroup(err) {
		// The stream or group vanished (FLUSHALL, manual cleanup): recreate.
		if err = s.createGroup(ctx, p); err == nil {
			res, err = s.rdb.XReadGroup(ctx, args).Result()
		}
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, s.wrap("read", err)
	}
	return res, nil
}

// readPending returns up to max of consumer's pending entries after cursor,
// with their delivery counts. last is the id to continue from; it is ""
// only when the consumer has nothing pending after cursor.
func (s *Store) readPending(ctx context.Context, p int, consumer, cursor string, max int) ([]store.Entry, string, error) {
	key := s.qKey(p)
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: s.group, Consumer: consumer,
		Streams: []string{key, cursor},
		Count:   int64(max), Block: -1,
	}).Result()
	if isNoGroup(err) {
		return nil, "", s.createGroup(ctx, p)
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", s.wrap("read pending", err)
	}
	var msgs []redis.XMessage
	for _, str := range res {
		msgs = append(msgs, str.Messages...)
	}
	if len(msgs) == 0 {
		return nil, "", nil
	}
	// Reading history increments the delivery counts; XPENDING tells them.
	pend, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: key, Group: s.group, Consumer: consumer,
		Start: msgs[0].ID, End: msgs[len(msgs)-1].ID, Count: int64(len(msgs)),
	}).Result()
	if err != nil {
		return nil, "", s.wrap("read pending", err)
	}
	counts := make(map[string]int64, len(pend))
	for _, pe := range pend {
		counts[pe.ID] = pe.RetryCount
	}
	out := make([]store.Entry, 0, len(msgs))
	var gone []string
	for _, m := range msgs {
		if m.Values == nil {
			gone = append(gone, m.ID) // deleted while pending: nothing to deliver
			continue
		}
		out = append(out, s.entry(p, m, int(max64(counts[m.ID], 1))))
	}
	if len(gone) > 0 {
		if err := s.rdb.XAck(ctx, key, s.group, gone...).Err(); err != nil {
			return nil, "", s.wrap("read pending", err)
		}
	}
	return out, msgs[len(msgs)-1].ID, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func (s *Store) entry(p int, m redis.XMessage, deliveries int) store.Entry {
	e := store.Entry{ID: entryID(p, m.ID), Partition: p, Deliveries: deliveries, EnqueuedAt: idTime(m.ID)}
	if k, ok := m.Values["k"].(string); ok {
		e.Key = k
	}
	if v, ok := m.Values["p"].(string); ok {
		e.Payload = []byte(v)
	}
	return e
}

// ackScript acks and deletes in one step, and deletes only what it acked:
// an id that is not pending (never delivered, or done already) is left alone.
var ackScript = redis.NewScript(`
local n = 0
for i = 2, #ARGV do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n`)

// Ack implements store.Queue.
func (s *Store) Ack(ctx context.Context, p int, ids ...string) error {
	if err := s.checkPartition("ack", p); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, s.group)
	for _, id := range ids {
		sid, err := s.streamID("ack", p, id)
		if err != nil {
			return err
		}
		args = append(args, sid)
	}
	return s.wrap("ack", ackScript.Run(ctx, s.rdb, []string{s.qKey(p)}, args...).Err())
}

// reclaimRounds bounds the XAUTOCLAIM calls of one Reclaim: each scans at
// most 10×max pending entries, so a long pending list is walked over a few
// calls (the cursor is kept between Reclaims).
const reclaimRounds = 8

// Reclaim implements store.Queue.
func (s *Store) Reclaim(ctx context.Context, p int, consumer string, minIdle time.Duration, max int) ([]store.Entry, error) {
	if err := s.checkPartition("reclaim", p); err != nil {
		return nil, err
	}
	if consumer == "" || max <= 0 {
		return nil, invalid("reclaim", "consumer must be set and max > 0")
	}
	key := s.qKey(p)
	s.mu.Lock()
	start := s.claimCur[p]
	s.mu.Unlock()
	if start == "" {
		start = "0-0"
	}
	var msgs []redis.XMessage
	seen := map[string]bool{}
	for round := 0; round < reclaimRounds && len(msgs) < max; round++ {
		got, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: key, Group: s.group, Consumer: consumer,
			MinIdle: minIdle, Start: start, Count: int64(max - len(msgs)),
		}).Result()
		if isNoGroup(err) {
			return []store.Entry{}, s.createGroup(ctx, p)
		}
		if err != nil {
			return nil, s.wrap("reclaim", err)
		}
		for _, m := range got {
			// With minIdle 0 a wrapped walk can meet what it just claimed.
			if !seen[m.ID] {
				seen[m.ID] = true
				msgs = append(msgs, m)
			}
		}
		wrapped := start != "0-0" && next == "0-0"
		start = next
		if next == "0-0" && !wrapped {
			break // walked the whole list from its start
		}
	}
	s.mu.Lock()
	s.claimCur[p] = start
	s.mu.Unlock()
	out := make([]store.Entry, 0, len(msgs))
	if len(msgs) == 0 {
		return out, nil
	}
	// XCLAIM increments the delivery counts; read them back.
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.XPendingExtCmd, len(msgs))
	for i, m := range msgs {
		cmds[i] = pipe.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: s.group, Start: m.ID, End: m.ID, Count: 1})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.wrap("reclaim", err)
	}
	for i, m := range msgs {
		n := int64(1)
		if pe, err := cmds[i].Result(); err == nil && len(pe) == 1 {
			n = pe[0].RetryCount
		}
		if m.Values == nil {
			continue
		}
		out = append(out, s.entry(p, m, int(n)))
	}
	return out, nil
}

// Depth implements store.Queue: acked entries are deleted, so the stream
// lengths are the entries not yet done.
func (s *Store) Depth(ctx context.Context) (int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, s.parts)
	for p := range cmds {
		cmds[p] = pipe.XLen(ctx, s.qKey(p))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, s.wrap("depth", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}
