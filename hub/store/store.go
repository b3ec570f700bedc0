// Package store defines everything the hub keeps between requests: the
// partitioned inbound queue, leases, versioned key-value state, dedupe keys,
// counters, conversation history, timers, dead letters and append-only logs.
//
// Two implementations pass one conformance suite (hub/store/storetest):
// redisstore (shared by many hub replicas) and embedded (bbolt, one process,
// the zero-setup default).
//
// # Consuming the queue in order
//
// The queue keeps order within a partition; keeping a conversation's order
// across replicas and failures takes a few rules on the consumer side:
//
//   - Own a partition through a lease (Acquire "queue/<p>", Renew well
//     within the ttl) and read it only while holding the lease; serialise
//     entries of one Key (a lane per key).
//   - Use a consumer name that is stable across restarts (a configured
//     replica id), so its pending entries are found again after a crash.
//   - On taking a partition (a new lease, not a renewal), first call
//     Reclaim(p, me, 0, n) until it returns nothing: it hands out, in order
//     and once each, everything pending on the partition, whether a dead
//     owner left it or this consumer did before a restart. Only then Read.
//     Reading first would handle a conversation's newer messages before
//     older ones the previous owner had taken.
//   - A single process that never shares partitions may skip that: its
//     first Reads after a restart return its own pending entries first.
//   - Reclaim with a minIdle above the worst-case handling time is for
//     consumers that read without leases; with leases, takeover covers it.
//   - Ack only after the effects are recorded. Deliveries counts attempts:
//     past the limit, PutDead (ID = Entry.ID, so a crash between the two
//     replays idempotently) and then Ack.
//   - A lease is advisory: a stalled owner can still act after losing it,
//     so effects carry idempotency keys (Dedupe.MarkOnce) as well.
//
// Conventions shared by every method:
//   - ttl <= 0 means "no expiry" unless a method says otherwise;
//   - errors are wrapped with context; test them with errors.Is against the
//     sentinels below. Any failure to reach the backing store wraps
//     ErrUnavailable, so ingress can answer 503 and the provider retries;
//   - byte slices passed in are not retained, slices returned are the
//     caller's to keep.
package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

var (
	// ErrUnavailable wraps every failure to reach the backing store
	// (connection refused, timeout, Redis loading/failover, disk I/O error).
	// Nothing was stored when it is returned.
	ErrUnavailable = errors.New("store unavailable")
	// ErrClosed is returned after Close. It also matches ErrUnavailable.
	ErrClosed = fmt.Errorf("store closed: %w", ErrUnavailable)
	// ErrNotFound: the key, dead letter or record does not exist (or expired).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a compare-and-swap or a timer claim lost to another writer.
	ErrConflict = errors.New("version conflict")
	// ErrInvalid: an argument the store cannot accept (empty key, bad cursor…).
	ErrInvalid = errors.New("invalid argument")
)

// Store is the whole state of the hub. Implementations are safe for
// concurrent use by many goroutines.
type Store interface {
	Queue
	Leases
	KV
	Dedupe
	Counters
	History
	Timers
	DeadLetters
	Logs

	// Ping checks that the backing store answers; it returns an error
	// wrapping ErrUnavailable when it does not.
	Ping(ctx context.Context) error
	// Close releases connections and files. Blocked Reads return ErrClosed.
	Close() error
}

// Entry is one queued message.
type Entry struct {
	ID        string // opaque, unique store-wide, ordered within a partition
	Partition int
	Key       string // the ordering key (conversation); same key → same partition
	Payload   []byte
	// Deliveries counts how many times the entry was handed out, this one
	// included: 1 on first delivery, more after a crash re-read or Reclaim.
	Deliveries int
	EnqueuedAt time.Time
}

// Queue is a durable, partitioned at-least-once queue. Entries of one key
// always land in one partition and are read in enqueue order within it.
// An entry stays pending (delivered, not acked) until Ack; a pending entry
// is handed out again to the same consumer after a restart (its first Read)
// or to any consumer through Reclaim once it has been idle long enough.
//
// Per-key order across replicas is the caller's job: one replica owns a
// partition at a time (through a lease) and serialises entries of one key.
type Queue interface {
	// Partitions is the fixed number of partitions, P.
	Partitions() int
	// PartitionOf is the partition of key: PartitionFor(key, P).
	PartitionOf(key string) int
	// Enqueue durably appends payload to the partition of key. When it
	// returns nil the entry survives a crash of this process.
	Enqueue(ctx context.Context, key string, payload []byte) (id string, err error)
	// Read returns up to max entries of partition for consumer. A consumer's
	// first Reads after the Store was opened return its own pending entries
	// (left by a previous run under the same consumer name); then new
	// entries. It waits up to block for new entries (block <= 0: does not
	// wait) and returns an empty slice, not an error, when none came.
	Read(ctx context.Context, partition int, consumer string, max int, block time.Duration) ([]Entry, error)
	// Ack removes entries for good. Unknown or already acked ids are ignored.
	Ack(ctx context.Context, partition int, ids ...string) error
	// Reclaim hands consumer up to max entries of partition, oldest first,
	// that have been pending with other consumers for at least minIdle,
	// incrementing their Deliveries. minIdle must exceed the worst-case
	// handling time; 0 takes everything others hold (partition takeover:
	// call it until it returns nothing). A consumer's own pending entries
	// come back through its first Reads after a restart, not here.
	Reclaim(ctx context.Context, partition int, consumer string, minIdle time.Duration, max int) ([]Entry, error)
	// Depth is the number of entries not yet acked, over all partitions.
	Depth(ctx context.Context) (int64, error)
}

// Leases are named, owner-checked, expiring locks (partition ownership,
// singleton jobs). They are advisory: a holder that stalls past its ttl
// loses the lease, so effects must still carry idempotency keys.
type Leases interface {
	// Acquire takes the lease for owner for ttl. It returns true when owner
	// holds it afterwards: newly taken, or already held by owner (then the
	// ttl is extended). It returns false when another owner holds it.
	Acquire(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	// Renew extends owner's lease to ttl from now; false if owner no longer
	// holds it (expired or taken by another owner).
	Renew(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	// Release gives up the lease if owner holds it; otherwise it does nothing.
	Release(ctx context.Context, name, owner string) error
}

// Item is one key-value pair with its version.
type Item struct {
	Key     string
	Value   []byte
	Version int64
}

// KV is a namespaced key-value space with versions for compare-and-swap
// (conversation and contact state, and the plugins' host KV service).
//
// Versions are opaque, positive and strictly increasing per key. They come
// from a sequence that never goes back, so they are never reused, not even
// after Delete or expiry: a CAS holding a stale version cannot succeed on a
// key that was deleted and re-created in between (no ABA).
//
// A namespace must be non-empty and must not contain '{' or '}' (in Redis it
// is the cluster hash tag, so one namespace lives in one cluster slot).
type KV interface {
	// Get returns the value and version of key, or ErrNotFound.
	Get(ctx context.Context, ns, key string) (val []byte, version int64, err error)
	// Put writes val unconditionally and returns the new version.
	Put(ctx context.Context, ns, key string, val []byte, ttl time.Duration) (version int64, err error)
	// CompareAndSwap writes val only if the current version is expect
	// (0: the key must not exist). It returns the new version, or
	// ErrConflict when the version differs.
	CompareAndSwap(ctx context.Context, ns, key string, expect int64, val []byte, ttl time.Duration) (version int64, err error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, ns, key string) error
	// CompareAndDelete removes key only if its version is expect;
	// ErrConflict otherwise (also when the key is missing).
	CompareAndDelete(ctx context.Context, ns, key string, expect int64) error
	// List returns up to limit live items of ns whose key starts with
	// prefix, in key order, after cursor ("" = from the start). next is ""
	// when there is nothing more; otherwise pass it back as cursor.
	List(ctx context.Context, ns, prefix, cursor string, limit int) (items []Item, next string, err error)
}

// Dedupe remembers keys for a while (provider message ids, idempotency keys).
type Dedupe interface {
	// MarkOnce records key for ttl and reports whether this call was the
	// first to do so (SET NX semantics). ttl must be > 0.
	MarkOnce(ctx context.Context, key string, ttl time.Duration) (first bool, err error)
	// Forget removes key (a mark or a record), so the next MarkOnce is
	// first again (used when the work a mark guarded failed and must be
	// redone).
	Forget(ctx context.Context, key string) error
	// Record remembers key for ttl (> 0) with a value, replacing what was
	// there: the result of an effect done once. Unlike KV items a record
	// has no version and is not listed, so it costs one store operation.
	// Records share MarkOnce's keys: use distinct prefixes.
	Record(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// Recorded returns a live record's value; ok is false when there is
	// none.
	Recorded(ctx context.Context, key string) (val []byte, ok bool, err error)
}

// Counters are integers with a fixed-window expiry (rate limits, budgets).
type Counters interface {
	// Incr adds delta and returns the new value. ttl is applied when the
	// counter is created (a fixed window), not on every increment.
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
	// GetCounter returns the value, 0 when the counter is missing or expired.
	GetCounter(ctx context.Context, key string) (int64, error)
}

// History keeps the last turns of a conversation for the LLM prompt.
type History interface {
	// AppendTurn appends turn, keeps only the last keep turns (keep <= 0:
	// keeps all), refreshes the ttl of the whole history, all atomically.
	// It returns the number of turns ever appended while the history lived
	// (not just kept), so callers can flag a conversation past a hard cap.
	AppendTurn(ctx context.Context, conv string, turn []byte, keep int, ttl time.Duration) (total int64, err error)
	// History returns the kept turns, oldest first; empty if none.
	History(ctx context.Context, conv string) ([][]byte, error)
	// TurnCount returns the total described at AppendTurn (0 if none).
	TurnCount(ctx context.Context, conv string) (int64, error)
	// DeleteHistory removes the turns and the total.
	DeleteHistory(ctx context.Context, conv string) error
}

// Timer is a scheduled payload handed out by ClaimDue.
type Timer struct {
	ID      string
	Due     time.Time // as scheduled (millisecond precision)
	Payload []byte
	// Attempts counts claims since the timer was (re)scheduled, this one
	// included: more than 1 means an earlier claim's lease ran out.
	Attempts int
	// Claim identifies this claim; pass it to Done.
	Claim string
}

// Timers are due-time ordered, fire-once-across-replicas schedules (SLA
// deadlines, follow-ups, quiet windows).
type Timers interface {
	// Schedule sets timer id to fire at due with payload. Scheduling an
	// existing id replaces it (also one that is claimed: the old claim's
	// Done then fails with ErrConflict), which makes debouncing easy.
	Schedule(ctx context.Context, id string, due time.Time, payload []byte) error
	// Cancel removes the timer, claimed or not. Missing is not an error.
	Cancel(ctx context.Context, id string) error
	// ClaimDue atomically claims up to max timers due at or before now,
	// earliest first, for lease: no other caller gets them during the
	// lease. A claim not completed with Done within lease becomes due again.
	ClaimDue(ctx context.Context, now time.Time, max int, lease time.Duration) ([]Timer, error)
	// Done removes a claimed timer. It returns ErrConflict when the claim is
	// stale (lease ran out and another caller claimed it, or the timer was
	// rescheduled meanwhile); nil when the timer no longer exists.
	Done(ctx context.Context, id, claim string) error
}

// DeadLetter is a message given up on, kept whole so it can be replayed.
type DeadLetter struct {
	ID       string // use Entry.ID: putting the same id again replaces it
	Entry    Entry
	Error    string
	Attempts int
	At       time.Time
}

// DeadLetters is the list of messages given up on, ordered by At.
type DeadLetters interface {
	PutDead(ctx context.Context, d DeadLetter) error
	// ListDead returns up to limit dead letters, oldest first, after cursor
	// ("" = from the start); next is "" when there is nothing more.
	ListDead(ctx context.Context, cursor string, limit int) (items []DeadLetter, next string, err error)
	// GetDead returns one dead letter or ErrNotFound.
	GetDead(ctx context.Context, id string) (DeadLetter, error)
	// DeleteDead removes one; missing is not an error.
	DeleteDead(ctx context.Context, id string) error
}

// Record is one entry of an append-only log.
type Record struct {
	ID   string // time-ordered within its log
	At   time.Time
	Data []byte
}

// LogRange selects records of a log. Zero From/To mean unbounded; After,
// if set, is a cursor (a Record.ID or a previous next) and wins over From.
type LogRange struct {
	From, To time.Time // inclusive, millisecond precision
	After    string
	Limit    int // <= 0: a default of 100
}

// Logs are append-only, time-ordered logs with retention (the effects audit
// trail, the raw inbound log).
type Logs interface {
	// Append adds rec to log and drops records older than retention
	// (retention <= 0: keep everything). Retention is approximate: records
	// are kept at least that long and removed soon after.
	Append(ctx context.Context, log string, rec []byte, retention time.Duration) (id string, err error)
	// AppendEach appends rec to every log of logs as Append would, in one
	// round trip (the audit trail writes each record to the global log and
	// to its conversation's). ids are in the order of logs. On an error some
	// of the logs may hold the record and others not.
	AppendEach(ctx context.Context, logs []string, rec []byte, retention time.Duration) (ids []string, err error)
	// Range returns records in time order; next is "" when there is
	// nothing more, otherwise pass it as LogRange.After.
	Range(ctx context.Context, log string, r LogRange) (recs []Record, next string, err error)
}

// PartitionFor maps an ordering key to a partition in [0, n). Both stores use
// it, so a key's partition does not depend on the backend. Changing n moves
// keys between partitions: drain the queue before changing it.
func PartitionFor(key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// DefaultLogLimit is the page size of Range when LogRange.Limit <= 0.
const DefaultLogLimit = 100

// CheckNamespace reports whether ns is a usable KV namespace (see KV).
func CheckNamespace(ns string) error {
	if ns == "" {
		return fmt.Errorf("kv namespace is empty: %w", ErrInvalid)
	}
	for i := 0; i < len(ns); i++ {
		if ns[i] == '{' || ns[i] == '}' {
			return fmt.Errorf("kv namespace %q contains a brace: %w", ns, ErrInvalid)
		}
	}
	return nil
}
