package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	bolt "go.etcd.io/bbolt"
)

// History record: expiry, total appended, number of turns, turns. The whole
// history is one value: it is short (the last 20 turns by default), and one
// value makes trim and TTL refresh atomic for free.

type histrec struct {
	exp   int64
	total int64
	turns [][]byte
}

func decodeHist(v []byte) (histrec, error) {
	d := dec{b: v}
	r := histrec{exp: d.i64(), total: d.i64()}
	n := d.u64()
	for i := uint64(0); i < n && d.err == nil; i++ {
		r.turns = append(r.turns, d.bytes())
	}
	return r, d.err
}

func (r histrec) encode() []byte {
	e := enc(nil).i64(r.exp).i64(r.total).u64(uint64(len(r.turns)))
	for _, t := range r.turns {
		e = e.bytes(t)
	}
	return e
}

func (s *Store) histGet(tx *bolt.Tx, conv string) (histrec, []byte, error) {
	v := tx.Bucket(bHist).Get([]byte(conv))
	if !live(v, s.nowNanos()) {
		return histrec{}, v, nil
	}
	r, err := decodeHist(v)
	return r, v, err
}

// AppendTurn implements store.History.
func (s *Store) AppendTurn(ctx context.Context, conv string, turn []byte, keep int, ttl time.Duration) (int64, error) {
	if conv == "" {
		return 0, invalid("append-turn", "empty conversation")
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("embedded: append-turn: %w", err)
	}
	var total int64
	err := s.hot("append-turn", func(tx *bolt.Tx) error {
		r, old, err := s.histGet(tx, conv)
		if err != nil {
			return err
		}
		r.turns = append(r.turns, bytes.Clone(turn))
		if keep > 0 && len(r.turns) > keep {
			r.turns = r.turns[len(r.turns)-keep:]
		}
		r.total++
		r.exp = s.expiry(ttl)
		total = r.total
		if err := tx.Bucket(bHist).Put([]byte(conv), r.encode()); err != nil {
			return err
		}
		return setExpiry(tx, kindHist, []byte(conv), expiryOf(old), r.exp)
	})
	return total, err
}

// History implements store.History.
func (s *Store) History(ctx context.Context, conv string) ([][]byte, error) {
	if conv == "" {
		return nil, invalid("history", "empty conversation")
	}
	var r histrec
	err := s.view("history", func(tx *bolt.Tx) error {
		var err error
		r, _, err = s.histGet(tx, conv)
		return err
	})
	if err != nil {
		return nil, err
	}
	if r.turns == nil {
		r.turns = [][]byte{}
	}
	return r.turns, nil
}

// TurnCount implements store.History.
func (s *Store) TurnCount(ctx context.Context, conv string) (int64, error) {
	if conv == "" {
		return 0, invalid("turn-count", "empty conversation")
	}
	var r histrec
	err := s.view("turn-count", func(tx *bolt.Tx) error {
		var err error
		r, _, err = s.histGet(tx, conv)
		return err
	})
	return r.total, err
}

// DeleteHistory implements store.History.
func (s *Store) DeleteHistory(ctx context.Context, conv string) error {
	return s.deleteExpiring(ctx, "delete-history", bHist, kindHist, conv)
}

// Timer record. at is when the timer is next looked at: its due time, or
// the end of the lease while claimed, so an expired claim is simply due
// again. gen changes on every schedule and claim and is the claim token.

type tmrrec struct {
	at       int64
	dueMs    int64
	gen      uint64
	attempts uint64
	payload  []byte
}

func decodeTmr(v []byte) (tmrrec, error) {
	d := dec{b: v}
	r := tmrrec{at: d.i64(), dueMs: d.i64(), gen: d.u64(), attempts: d.u64(), payload: d.bytes()}
	return r, d.err
}

func (r tmrrec) encode() []byte {
	return enc(nil).i64(r.at).i64(r.dueMs).u64(r.gen).u64(r.attempts).bytes(r.payload)
}

func tmrKey(at int64, id string) []byte { return append(u64key(uint64(at)), id...) }

func (s *Store) tmrPut(tx *bolt.Tx, id string, old []byte, r tmrrec) error {
	if old != nil {
		o, err := decodeTmr(old)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bTmrAt).Delete(tmrKey(o.at, id)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bTmr).Put([]byte(id), r.encode()); err != nil {
		return err
	}
	return tx.Bucket(bTmrAt).Put(tmrKey(r.at, id), nil)
}

// Schedule implements store.Timers.
func (s *Store) Schedule(ctx context.Context, id string, due time.Time, payload []byte) error {
	if id == "" {
		return invalid("schedule", "empty timer id")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: schedule: %w", err)
	}
	return s.hot("schedule", func(tx *bolt.Tx) error {
		b := tx.Bucket(bTmr)
		gen, err := b.NextSequence()
		if err != nil {
			return err
		}
		ms := due.UnixMilli()
		r := tmrrec{at: ms * int64(time.Millisecond), dueMs: ms, gen: gen, payload: payload}
		return s.tmrPut(tx, id, b.Get([]byte(id)), r)
	})
}

// Cancel implements store.Timers.
func (s *Store) Cancel(ctx context.Context, id string) error {
	return s.tmrDelete(ctx, "cancel", id, "")
}

// Done implements store.Timers.
func (s *Store) Done(ctx context.Context, id, claim string) error {
	if claim == "" {
		return invalid("done", "empty claim")
	}
	return s.tmrDelete(ctx, "done", id, claim)
}

func (s *Store) tmrDelete(ctx context.Context, op, id, claim string) error {
	if id == "" {
		return invalid(op, "empty timer id")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: %s: %w", op, err)
	}
	return s.hot(op, func(tx *bolt.Tx) error {
		v := tx.Bucket(bTmr).Get([]byte(id))
		if v == nil {
			return errNoop
		}
		r, err := decodeTmr(v)
		if err != nil {
			return err
		}
		if claim != "" && (r.attempts == 0 || strconv.FormatUint(r.gen, 10) != claim) {
			return fmt.Errorf("timer %s: claim %s is stale: %w", id, claim, store.ErrConflict)
		}
		if err := tx.Bucket(bTmrAt).Delete(tmrKey(r.at, id)); err != nil {
			return err
		}
		return tx.Bucket(bTmr).Delete([]byte(id))
	})
}

// ClaimDue implements store.Timers.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, max int, lease time.Duration) ([]store.Timer, error) {
	if max <= 0 || lease <= 0 {
		return nil, invalid("claim-due", "max and lease must be > 0")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded: claim-due: %w", err)
	}
	var out []store.Timer
	err := s.update("claim-due", func(tx *bolt.Tx) error {
		out = out[:0]
		limit := now.UnixNano()
		var ids []string
		c := tx.Bucket(bTmrAt).Cursor()
		for k, _ := c.First(); k != nil && len(ids) < max; k, _ = c.Next() {
			if len(k) < 8 || int64(u64of(k[:8])) > limit {
				break
			}
			ids = append(ids, string(k[8:]))
		}
		if len(ids) == 0 {
			return errNoop
		}
		b := tx.Bucket(bTmr)
		for _, id := range ids {
			old := b.Get([]byte(id))
			if old == nil {
				continue
			}
			r, err := decodeTmr(old)
			if err != nil {
				return err
			}
			if r.gen, err = b.NextSequence(); err != nil {
				return err
			}
			r.attempts++
			r.at = limit + int64(lease)
			if err := s.tmrPut(tx, id, old, r); err != nil {
				return err
			}
			out = append(out, store.Timer{
				ID: id, Due: time.UnixMilli(r.dueMs), Payload: r.payload,
				Attempts: int(r.attempts), Claim: strconv.FormatUint(r.gen, 10),
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []store.Timer{}
	}
	return out, nil
}

// Dead letters: dead holds id → JSON, deadidx holds the list order as
// "<at unix nanos, 20 digits>:<id>" → id; that key is also the cursor.

func deadCursor(at time.Time, id string) string {
	return fmt.Sprintf("%020d:%s", max(at.UnixNano(), 0), id)
}

// PutDead implements store.DeadLetters.
func (s *Store) PutDead(ctx context.Context, d store.DeadLetter) error {
	if d.ID == "" {
		return invalid("put-dead", "empty dead letter id")
	}
	if d.At.IsZero() {
		d.At = s.now()
	}
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("embedded: put-dead: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: put-dead: %w", err)
	}
	return s.hot("put-dead", func(tx *bolt.Tx) error {
		b, idx := tx.Bucket(bDead), tx.Bucket(bDeadIdx)
		if old := b.Get([]byte(d.ID)); old != nil {
			var o store.DeadLetter
			if err := json.Unmarshal(old, &o); err != nil {
				return err
			}
			if err := idx.Delete([]byte(deadCursor(o.At, o.ID))); err != nil {
				return err
			}
		}
		if err := b.Put([]byte(d.ID), v); err != nil {
			return err
		}
		return idx.Put([]byte(deadCursor(d.At, d.ID)), []byte(d.ID))
	})
}

// ListDead implements store.DeadLetters.
func (s *Store) ListDead(ctx context.Context, cursor string, limit int) ([]store.DeadLetter, string, error) {
	if limit <= 0 {
		return nil, "", invalid("list-dead", "limit must be > 0")
	}
	var out []store.DeadLetter
	var next string
	err := s.view("list-dead", func(tx *bolt.Tx) error {
		out, next = out[:0], ""
		b := tx.Bucket(bDead)
		c := tx.Bucket(bDeadIdx).Cursor()
		for k, id := c.Seek([]byte(cursor)); k != nil; k, id = c.Next() {
			if string(k) <= cursor {
				continue
			}
			if len(out) == limit {
				next = deadCursor(out[len(out)-1].At, out[len(out)-1].ID)
				break
			}
			var d store.DeadLetter
			if err := json.Unmarshal(b.Get(id), &d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// GetDead implements store.DeadLetters.
func (s *Store) GetDead(ctx context.Context, id string) (store.DeadLetter, error) {
	var d store.DeadLetter
	var found bool
	err := s.view("get-dead", func(tx *bolt.Tx) error {
		v := tx.Bucket(bDead).Get([]byte(id))
		if found = v != nil; !found {
			return nil
		}
		return json.Unmarshal(v, &d)
	})
	if err != nil {
		return d, err
	}
	if !found {
		return d, fmt.Errorf("embedded: get-dead %s: %w", id, store.ErrNotFound)
	}
	return d, nil
}

// DeleteDead implements store.DeadLetters.
func (s *Store) DeleteDead(ctx context.Context, id string) error {
	if id == "" {
		return invalid("delete-dead", "empty dead letter id")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: delete-dead: %w", err)
	}
	return s.hot("delete-dead", func(tx *bolt.Tx) error {
		b := tx.Bucket(bDead)
		old := b.Get([]byte(id))
		if old == nil {
			return nil
		}
		var o store.DeadLetter
		if err := json.Unmarshal(old, &o); err != nil {
			return err
		}
		if err := tx.Bucket(bDeadIdx).Delete([]byte(deadCursor(o.At, o.ID))); err != nil {
			return err
		}
		return b.Delete([]byte(id))
	})
}

// Logs: one nested bucket per log, keyed by milliseconds and a sequence
// within the millisecond (the Redis stream id layout, so ids look alike on
// both stores and stay ordered even if the clock steps back).

func logKey(ms, seq uint64) []byte { return append(u64key(ms), u64key(seq)...) }

func parseLogID(id string) (ms, seq uint64, err error) {
	a, b, ok := strings.Cut(id, "-")
	if !ok {
		return 0, 0, invalid("log", fmt.Sprintf("record id %q", id))
	}
	if ms, err = strconv.ParseUint(a, 10, 64); err == nil {
		seq, err = strconv.ParseUint(b, 10, 64)
	}
	if err != nil {
		return 0, 0, invalid("log", fmt.Sprintf("record id %q", id))
	}
	return ms, seq, nil
}

func logID(k []byte) string {
	return strconv.FormatUint(u64of(k[:8]), 10) + "-" + strconv.FormatUint(u64of(k[8:]), 10)
}

// appendTrim bounds the records removed inline by one Append, so an
// append after a long pause does not turn into a long transaction; the
// sweeper removes the rest.
const appendTrim = 100

// trimLog deletes records of log older than minNanos, at most limit (< 0:
// no limit).
func trimLog(tx *bolt.Tx, log []byte, minNanos int64, limit int) error {
	b := tx.Bucket(bLogs).Bucket(log)
	if b == nil || minNanos <= 0 {
		return nil
	}
	minMs := uint64(minNanos / int64(time.Millisecond))
	var old [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && u64of(k[:8]) < minMs && (limit < 0 || len(old) < limit); k, _ = c.Next() {
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Append implements store.Logs.
func (s *Store) Append(ctx context.Context, log string, rec []byte, retention time.Duration) (string, error) {
	if log == "" {
		return "", invalid("append", "empty log name")
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("embedded: append: %w", err)
	}
	var id string
	err := s.hot("append", func(tx *bolt.Tx) (err error) {
		id, err = appendLog(tx, log, rec, retention, s.nowNanos())
		return err
	})
	return id, err
}

// AppendEach implements store.Logs: one transaction for all the logs.
func (s *Store) AppendEach(ctx context.Context, logs []string, rec []byte, retention time.Duration) ([]string, error) {
	for _, log := range logs {
		if log == "" {
			return nil, invalid("append", "empty log name")
		}
	}
	if len(logs) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded: append: %w", err)
	}
	var ids []string
	err := s.hot("append", func(tx *bolt.Tx) error {
		// A batched transaction may run fn again after a failure: start over.
		ids = make([]string, len(logs))
		now := s.nowNanos()
		for i, log := range logs {
			id, err := appendLog(tx, log, rec, retention, now)
			if err != nil {
				return err
			}
			ids[i] = id
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

func appendLog(tx *bolt.Tx, log string, rec []byte, retention time.Duration, now int64) (string, error) {
	b, err := tx.Bucket(bLogs).CreateBucketIfNotExists([]byte(log))
	if err != nil {
		return "", err
	}
	ms, seq := uint64(now/int64(time.Millisecond)), uint64(0)
	if k, _ := b.Cursor().Last(); k != nil {
		if lastMs := u64of(k[:8]); lastMs >= ms {
			ms, seq = lastMs, u64of(k[8:])+1
		}
	}
	k := logKey(ms, seq)
	if err := b.Put(k, rec); err != nil {
		return "", err
	}
	id := logID(k)
	if retention <= 0 {
		return id, tx.Bucket(bLogRet).Delete([]byte(log))
	}
	if err := tx.Bucket(bLogRet).Put([]byte(log), u64key(uint64(retention))); err != nil {
		return "", err
	}
	return id, trimLog(tx, []byte(log), now-int64(retention), appendTrim)
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
	var start []byte
	skip := ""
	switch {
	case r.After != "":
		ms, seq, err := parseLogID(r.After)
		if err != nil {
			return nil, "", err
		}
		start, skip = logKey(ms, seq), r.After
	case !r.From.IsZero():
		start = logKey(uint64(max(r.From.UnixMilli(), 0)), 0)
	}
	toMs := uint64(1<<63 - 1)
	if !r.To.IsZero() {
		toMs = uint64(max(r.To.UnixMilli(), 0))
	}
	var out []store.Record
	var next string
	err := s.view("range", func(tx *bolt.Tx) error {
		out, next = out[:0], ""
		b := tx.Bucket(bLogs).Bucket([]byte(log))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.First()
		if start != nil {
			k, v = c.Seek(start)
		}
		for ; k != nil && u64of(k[:8]) <= toMs; k, v = c.Next() {
			id := logID(k)
			if id == skip {
				continue
			}
			if len(out) == limit {
				next = out[len(out)-1].ID
				break
			}
			out = append(out, store.Record{ID: id, At: time.UnixMilli(int64(u64of(k[:8]))), Data: bytes.Clone(v)})
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}
