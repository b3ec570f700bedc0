package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// History.

func (s *Store) histKeys(conv string) (turns, total string) {
	base := s.prefix + "hist:{" + tag(conv) + "}:"
	return base + "t", base + "n"
}

// appendTurnScript: ARGV turn, keep (0: all), ttl ms (0: none).
var appendTurnScript = redis.NewScript(`
redis.call('RPUSH', KEYS[1], ARGV[1])
local keep = tonumber(ARGV[2])
if keep > 0 then
  redis.call('LTRIM', KEYS[1], -keep, -1)
end
local n = redis.call('INCR', KEYS[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
return n`)

// AppendTurn implements store.History.
func (s *Store) AppendTurn(ctx context.Context, conv string, turn []byte, keep int, ttl time.Duration) (int64, error) {
	if conv == "" {
		return 0, invalid("append-turn", "empty conversation")
	}
	t, n := s.histKeys(conv)
	total, err := appendTurnScript.Run(ctx, s.c, []string{t, n}, turn, max(keep, 0), ms(ttl)).Int64()
	return total, s.wrap("append-turn", err)
}

// History implements store.History.
func (s *Store) History(ctx context.Context, conv string) ([][]byte, error) {
	if conv == "" {
		return nil, invalid("history", "empty conversation")
	}
	t, _ := s.histKeys(conv)
	res, err := s.c.LRange(ctx, t, 0, -1).Result()
	if err != nil {
		return nil, s.wrap("history", err)
	}
	out := make([][]byte, len(res))
	for i, r := range res {
		out[i] = []byte(r)
	}
	return out, nil
}

// TurnCount implements store.History.
func (s *Store) TurnCount(ctx context.Context, conv string) (int64, error) {
	if conv == "" {
		return 0, invalid("turn-count", "empty conversation")
	}
	_, n := s.histKeys(conv)
	total, err := s.c.Get(ctx, n).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return total, s.wrap("turn-count", err)
}

// DeleteHistory implements store.History.
func (s *Store) DeleteHistory(ctx context.Context, conv string) error {
	if conv == "" {
		return invalid("delete-history", "empty conversation")
	}
	t, n := s.histKeys(conv)
	return s.wrap("delete-history", s.c.Del(ctx, t, n).Err())
}

// Timers: one zset scored by when each timer is next looked at (its due
// time, or the end of its lease while claimed, so an expired claim is simply
// due again) and one hash per field. gen changes on every schedule and
// claim and is the claim token.

func (s *Store) tmrKeys() []string {
	base := s.prefix + "tmr:{t}:"
	return []string{base + "z", base + "p", base + "d", base + "g", base + "a", base + "seq"}
}

// KEYS: z, p (payload), d (due ms), g (gen), a (attempts), seq.
var scheduleScript = redis.NewScript(`
local g = redis.call('INCR', KEYS[6])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], g)
redis.call('HSET', KEYS[5], ARGV[1], 0)
return g`)

var cancelScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 2, 5 do redis.call('HDEL', KEYS[i], ARGV[1]) end
return 1`)

// ARGV: now ms, max, lease ms. Returns {id, due, payload, attempts, gen}…
var claimScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local until_ = tonumber(ARGV[1]) + tonumber(ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  local g = redis.call('INCR', KEYS[6])
  redis.call('HSET', KEYS[4], id, g)
  local a = redis.call('HINCRBY', KEYS[5], id, 1)
  redis.call('ZADD', KEYS[1], until_, id)
  out[#out + 1] = {id, redis.call('HGET', KEYS[3], id) or '0', redis.call('HGET', KEYS[2], id) or '', a, g}
end
return out`)

// ARGV: id, claim. Returns 1 (done or gone) or 0 (stale claim).
var doneScript = redis.NewScript(`
local g = redis.call('HGET', KEYS[4], ARGV[1])
if not g then return 1 end
if g ~= ARGV[2] or tonumber(redis.call('HGET', KEYS[5], ARGV[1]) or '0') == 0 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 2, 5 do redis.call('HDEL', KEYS[i], ARGV[1]) end
return 1`)

// Schedule implements store.Timers.
func (s *Store) Schedule(ctx context.Context, id string, due time.Time, payload []byte) error {
	if id == "" {
		return invalid("schedule", "empty timer id")
	}
	return s.wrap("schedule", scheduleScript.Run(ctx, s.c, s.tmrKeys(), id, due.UnixMilli(), payload).Err())
}

// Cancel implements store.Timers.
func (s *Store) Cancel(ctx context.Context, id string) error {
	if id == "" {
		return invalid("cancel", "empty timer id")
	}
	return s.wrap("cancel", cancelScript.Run(ctx, s.c, s.tmrKeys(), id).Err())
}

// Done implements store.Timers.
func (s *Store) Done(ctx context.Context, id, claim string) error {
	if id == "" || claim == "" {
		return invalid("done", "timer id and claim must be set")
	}
	n, err := doneScript.Run(ctx, s.c, s.tmrKeys(), id, claim).Int()
	if err != nil {
		return s.wrap("done", err)
	}
	if n == 0 {
		return fmt.Errorf("redisstore: done: timer %s: claim %s is stale: %w", id, claim, store.ErrConflict)
	}
	return nil
}

// ClaimDue implements store.Timers.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, max int, lease time.Duration) ([]store.Timer, error) {
	if max <= 0 || lease <= 0 {
		return nil, invalid("claim-due", "max and lease must be > 0")
	}
	res, err := claimScript.Run(ctx, s.c, s.tmrKeys(), now.UnixMilli(), max, ms(lease)).Slice()
	if err != nil {
		return nil, s.wrap("claim-due", err)
	}
	out := make([]store.Timer, 0, len(res))
	for _, r := range res {
		f, ok := r.([]any)
		if !ok || len(f) != 5 {
			return nil, fmt.Errorf("redisstore: claim-due: unexpected reply %v", r)
		}
		id, _ := f[0].(string)
		dueS, _ := f[1].(string)
		payload, _ := f[2].(string)
		attempts, _ := f[3].(int64)
		gen, _ := f[4].(int64)
		due, _ := strconv.ParseInt(dueS, 10, 64)
		out = append(out, store.Timer{
			ID: id, Due: time.UnixMilli(due), Payload: []byte(payload),
			Attempts: int(attempts), Claim: strconv.FormatInt(gen, 10),
		})
	}
	return out, nil
}

// Dead letters: h holds id → JSON, m holds id → its member in i, the zset
// (all scores 0) ordered by "<at unix nanos, 20 digits>:<id>", which is
// also the cursor.

func (s *Store) deadKeys() []string {
	base := s.prefix + "dead:{d}:"
	return []string{base + "h", base + "m", base + "i"}
}

func deadMember(at time.Time, id string) string {
	return fmt.Sprintf("%020d:%s", max(at.UnixNano(), 0), id)
}

// ARGV: id, json, member.
var putDeadScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then redis.call('ZREM', KEYS[3], old) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[3])
return 1`)

var deleteDeadScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then redis.call('ZREM', KEYS[3], old) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1`)

// PutDead implements store.DeadLetters.
func (s *Store) PutDead(ctx context.Context, d store.DeadLetter) error {
	if d.ID == "" {
		return invalid("put-dead", "empty dead letter id")
	}
	if d.At.IsZero() {
		d.At = time.Now()
	}
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("redisstore: put-dead: %w", err)
	}
	return s.wrap("put-dead", putDeadScript.Run(ctx, s.c, s.deadKeys(), d.ID, v, deadMember(d.At, d.ID)).Err())
}

// ListDead implements store.DeadLetters.
func (s *Store) ListDead(ctx context.Context, cursor string, limit int) ([]store.DeadLetter, string, error) {
	if limit <= 0 {
		return nil, "", invalid("list-dead", "limit must be > 0")
	}
	k := s.deadKeys()
	min := "-"
	if cursor != "" {
		min = "(" + cursor
	}
	members, err := s.c.ZRangeByLex(ctx, k[2], &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit + 1)}).Result()
	if err != nil {
		return nil, "", s.wrap("list-dead", err)
	}
	next := ""
	if len(members) > limit {
		members, next = members[:limit], members[limit-1]
	}
	if len(members) == 0 {
		return []store.DeadLetter{}, "", nil
	}
	ids := make([]string, len(members))
	for i, m := range members {
		_, ids[i], _ = strings.Cut(m, ":")
	}
	vals, err := s.c.HMGet(ctx, k[0], ids...).Result()
	if err != nil {
		return nil, "", s.wrap("list-dead", err)
	}
	out := make([]store.DeadLetter, 0, len(vals))
	for _, v := range vals {
		js, ok := v.(string)
		if !ok {
			continue // deleted between the two calls
		}
		var d store.DeadLetter
		if err := json.Unmarshal([]byte(js), &d); err != nil {
			return nil, "", fmt.Errorf("redisstore: list-dead: %w", err)
		}
		out = append(out, d)
	}
	return out, next, nil
}

// GetDead implements store.DeadLetters.
func (s *Store) GetDead(ctx context.Context, id string) (store.DeadLetter, error) {
	var d store.DeadLetter
	js, err := s.c.HGet(ctx, s.deadKeys()[0], id).Bytes()
	if errors.Is(err, redis.Nil) {
		return d, fmt.Errorf("redisstore: get-dead %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return d, s.wrap("get-dead", err)
	}
	if err := json.Unmarshal(js, &d); err != nil {
		return d, fmt.Errorf("redisstore: get-dead %s: %w", id, err)
	}
	return d, nil
}

// DeleteDead implements store.DeadLetters.
func (s *Store) DeleteDead(ctx context.Context, id string) error {
	if id == "" {
		return invalid("delete-dead", "empty dead letter id")
	}
	return s.wrap("delete-dead", deleteDeadScript.Run(ctx, s.c, s.deadKeys(), id).Err())
}

// Logs: a stream per log; Append trims with an exact MINID so retention
// holds with few records too (approximate "~" trimming only drops whole
// stream nodes of ~100 entries). Trimming happens on Append: a log that
// gets no more appends keeps its last records.

func (s *Store) logKey(log string) string { return s.prefix + "log:{" + tag(log) + "}" }

// Append implements store.Logs.
func (s *Store) Append(ctx context.Context, log string, rec []byte, retention time.Duration) (string, error) {
	if log == "" {
		return "", invalid("append", "empty log name")
	}
	id, err := s.c.XAdd(ctx, s.appendArgs(log, rec, retention)).Result()
	return id, s.wrap("append", err)
}

func (s *Store) appendArgs(log string, rec []byte, retention time.Duration) *redis.XAddArgs {
	args := &redis.XAddArgs{Stream: s.logKey(log), ID: "*", Values: []any{"d", rec}}
	if retention > 0 {
		args.MinID = strconv.FormatInt(time.Now().Add(-retention).UnixMilli(), 10)
	}
	return args
}

// AppendEach implements store.Logs. The XADDs go out together: s.c is
// the client's autopipeliner, which sends concurrent commands in one batch
// (an explicit pipeline would take a connection of its own and cost more
// than it saves). The logs may live in different cluster slots, so one
// script could not write them all.
func (s *Store) AppendEach(ctx context.Context, logs []string, rec []byte, retention time.Duration) ([]string, error) {
	for _, log := range logs {
		if log == "" {
			return nil, invalid("append", "empty log name")
		}
	}
	ids := make([]string, len(logs))
	errs := make([]error, len(logs))
	var wg sync.WaitGroup
	for i := 1; i < len(logs); i++ {
		wg.Go(func() { ids[i], errs[i] = s.c.XAdd(ctx, s.appendArgs(logs[i], rec, retention)).Result() })
	}
	if len(logs) > 0 {
		ids[0], errs[0] = s.c.XAdd(ctx, s.appendArgs(logs[0], rec, retention)).Result()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, s.wrap("append", err)
	}
	return ids, nil
}

// Range implements store.Logs.
func (s *Store) Range(ctx context.Context, log string, r store.LogRange) ([]store.Record, string, error) {
	if log == "" {
		return nil, "", invalid("range", "empty log name")
	}
	limit := r.Limit
	if limit <= 0 {
		limit = store.DefaultLogLimit
	}
	start, end := "-", "+"
	switch {
	case r.After != "":
		if !strings.Contains(r.After, "-") {
			return nil, "", invalid("range", fmt.Sprintf("record id %q", r.After))
		}
		start = "(" + r.After
	case !r.From.IsZero():
		start = strconv.FormatInt(max(r.From.UnixMilli(), 0), 10)
	}
	if !r.To.IsZero() {
		end = strconv.FormatInt(max(r.To.UnixMilli(), 0), 10)
	}
	msgs, err := s.c.XRangeN(ctx, s.logKey(log), start, end, int64(limit+1)).Result()
	if err != nil {
		if strings.Contains(err.Error(), "Invalid stream ID") {
			return nil, "", invalid("range", err.Error())
		}
		return nil, "", s.wrap("range", err)
	}
	next := ""
	if len(msgs) > limit {
		msgs, next = msgs[:limit], msgs[limit-1].ID
	}
	out := make([]store.Record, 0, len(msgs))
	for _, m := range msgs {
		d, _ := m.Values["d"].(string)
		out = append(out, store.Record{ID: m.ID, At: idTime(m.ID), Data: []byte(d)})
	}
	return out, next, nil
}
