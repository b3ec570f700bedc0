package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
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
	sid, err := s.c.XAdd(ctx, &redis.XAddArgs{
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
// Reclaim shares it: entries it hands out move the cursor too, so a
// takeover (Reclaim, then Read) returns nothing twice. mu serialises the
// two for one consumer.
type pendState struct {
	mu     sync.Mutex
	cursor string // stream id; everything up to it was handed out
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
	st.mu.Lock()
	if !st.done {
		out, last, err := s.readPending(ctx, p, consumer, st.cursor, count)
		if err != nil {
			st.mu.Unlock()
			return nil, err
		}
		if last != "" {
			st.cursor = last
		} else {
			st.done = true
		}
		if len(out) > 0 || last != "" {
			st.mu.Unlock()
			return out, nil
		}
	}
	st.mu.Unlock()
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
	pend, err := s.c.XPendingExt(ctx, &redis.XPendingExtArgs{
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
		if err := s.c.XAck(ctx, key, s.group, gone...).Err(); err != nil {
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
	return s.wrap("ack", ackScript.Run(ctx, s.c, []string{s.qKey(p)}, args...).Err())
}

// reclaimPage is how many pending entries one XPENDING call looks at.
const reclaimPage = 200

// Reclaim implements store.Queue with XPENDING to find the entries and
// XCLAIM to take them; XCLAIM re-checks the idle time, so two reclaimers
// never both get an entry (for minIdle > 0). XAUTOCLAIM is not used: it
// also takes the caller's own entries, so a takeover loop with minIdle 0
// would never end. Until the consumer's own pending entries from before
// the Store was opened have been handed out (see Read), Reclaim includes
// them too, in order, so a takeover gets everything pending exactly once.
func (s *Store) Reclaim(ctx context.Context, p int, consumer string, minIdle time.Duration, count int) ([]store.Entry, error) {
	if err := s.checkPartition("reclaim", p); err != nil {
		return nil, err
	}
	if consumer == "" || count <= 0 {
		return nil, invalid("reclaim", "consumer must be set and max > 0")
	}
	key := s.qKey(p)
	st := s.pendFor(p, consumer)
	st.mu.Lock()
	defer st.mu.Unlock()
	var others, own []string
	prior := map[string]int64{}
	start, visited, walkedAll := "-", "", false
	idle := minIdle
	if !st.done {
		idle = 0 // own entries count whatever their idle time
	}
walk:
	for {
		pend, err := s.c.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: key, Group: s.group, Idle: idle,
			Start: start, End: "+", Count: reclaimPage,
		}).Result()
		if isNoGroup(err) {
			return []store.Entry{}, s.createGroup(ctx, p)
		}
		if err != nil {
			return nil, s.wrap("reclaim", err)
		}
		for _, pe := range pend {
			if len(others)+len(own) == count {
				break walk
			}
			visited = pe.ID
			switch {
			case pe.Consumer == consumer:
				if !st.done && streamLess(st.cursor, pe.ID) {
					own = append(own, pe.ID)
					prior[pe.ID] = pe.RetryCount
				}
			case pe.Idle >= minIdle:
				others = append(others, pe.ID)
				prior[pe.ID] = pe.RetryCount
			}
		}
		if len(pend) < reclaimPage {
			walkedAll = true
			break
		}
		start = "(" + pend[len(pend)-1].ID
	}
	var msgs []redis.XMessage
	for _, c := range []struct {
		ids     []string
		minIdle time.Duration
	}{{others, minIdle}, {own, 0}} {
		if len(c.ids) == 0 {
			continue
		}
		got, err := s.c.XClaim(ctx, &redis.XClaimArgs{
			Stream: key, Group: s.group, Consumer: consumer, MinIdle: c.minIdle, Messages: c.ids,
		}).Result()
		if err != nil {
			return nil, s.wrap("reclaim", err)
		}
		msgs = append(msgs, got...)
	}
	if !st.done {
		if visited != "" && streamLess(st.cursor, visited) {
			st.cursor = visited
		}
		st.done = walkedAll
	}
	out := make([]store.Entry, 0, len(msgs))
	for _, m := range msgs {
		if m.Values == nil {
			continue // deleted meanwhile
		}
		out = append(out, s.entry(p, m, int(prior[m.ID]+1)))
	}
	sort.Slice(out, func(i, j int) bool {
		_, a, _ := strings.Cut(out[i].ID, "/")
		_, b, _ := strings.Cut(out[j].ID, "/")
		return streamLess(a, b)
	})
	return out, nil
}

// streamLess orders stream ids ("0" counts as 0-0).
func streamLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ami, _ := strconv.ParseUint(am, 10, 64)
	bmi, _ := strconv.ParseUint(bm, 10, 64)
	if ami != bmi {
		return ami < bmi
	}
	asi, _ := strconv.ParseUint(as, 10, 64)
	bsi, _ := strconv.ParseUint(bs, 10, 64)
	return asi < bsi
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
