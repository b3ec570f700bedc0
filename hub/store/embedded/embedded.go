// Package embedded is the zero-setup Store: one bbolt file on local disk,
// for a single hub process with no server to run.
//
// Durability. By default every write transaction is fsynced before the call
// returns, so a 2xx given after Enqueue survives a power cut. Two knobs trade
// that for speed:
//   - Options.BatchDelay > 0 routes the writes of the message path (queue,
//     KV, dedupe, counters, history, timers, logs, leases, dead letters)
//     through bbolt's Batch: concurrent callers share one commit and one
//     fsync. Each caller still returns only after its data is on disk, but a
//     lone caller waits up to BatchDelay first. (Before, only Enqueue, Ack
//     and MarkOnce were batched, and every other write paid its own fsync
//     in turn: the hub processed about 130 messages/s on this store.)
//   - Options.NoSync skips fsync. Data is still written to the OS page cache
//     before a call returns, so it survives the hub being killed (SIGKILL,
//     panic) but not a kernel crash or power loss.
//
// Time. Expiring records are checked against the clock on every read and
// swept in the background every SweepInterval; Options.Now injects a clock
// for tests.
//
// The file is locked while open: a second process opening the same path
// fails after Options.LockTimeout instead of blocking forever.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Options configure Open. Only Path is required.
type Options struct {
	// Path of the bbolt file; created if missing.
	Path string
	// Partitions of the queue (default 16). Reopening a file with a
	// different number fails while the queue is not empty, because keys
	// would move between partitions and lose their order.
	Partitions int
	// NoSync skips fsync on commit (see the package doc).
	NoSync bool
	// BatchDelay > 0 coalesces concurrent hot writes (see the package doc).
	BatchDelay time.Duration
	// SweepInterval between background sweeps of expired records
	// (default 1 minute; < 0 disables the sweeper, reads still honour TTLs).
	SweepInterval time.Duration
	// LockTimeout to wait for the file lock held by another process
	// (default 2 seconds).
	LockTimeout time.Duration
	// Now is the clock (default time.Now). Tests inject a fake one.
	Now func() time.Time
}

// Store implements store.Store on bbolt.
type Store struct {
	db         *bolt.DB
	parts      int
	now        func() time.Time
	batch      bool
	closing    chan struct{}
	closeOnce  sync.Once
	sweeperWG  sync.WaitGroup
	notifyMu   sync.Mutex
	notify     []chan struct{} // per partition, closed and replaced on Enqueue
	pendMu     sync.Mutex
	pend       map[pendKey]*pendState
	sweepEvery time.Duration
}

var _ store.Store = (*Store)(nil)

// Bucket names. Nested buckets: q/<partition>, kv/<namespace>, logs/<log>.
var (
	bMeta    = []byte("meta")
	bQueue   = []byte("q")
	bQCur    = []byte("qcur") // partition → last delivered sequence
	bQLen    = []byte("qlen") // partition → entries not yet acked
	bKV      = []byte("kv")
	bOnce    = []byte("once")
	bCtr     = []byte("ctr")
	bHist    = []byte("hist")
	bLease   = []byte("lease")
	bTmr     = []byte("tmr")
	bTmrAt   = []byte("tmrat") // effective time + id → nil
	bDead    = []byte("dead")
	bDeadIdx = []byte("deadidx") // cursor string → id
	bLogs    = []byte("logs")
	bLogRet  = []byte("logret") // log → retention nanoseconds
	bExp     = []byte("exp")    // expiry + kind + ref → nil
	allTop   = [][]byte{bMeta, bQueue, bQCur, bQLen, bKV, bOnce, bCtr, bHist, bLease, bTmr, bTmrAt, bDead, bDeadIdx, bLogs, bLogRet, bExp}

	keyPartitions = []byte("partitions")
)

// Open opens (or creates) the store file.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, fmt.Errorf("embedded: open: no path: %w", store.ErrInvalid)
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 16
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = time.Minute
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("embedded: open %s: file is locked by another process: %w", opts.Path, err)
		}
		return nil, fmt.Errorf("embedded: open %s: %w", opts.Path, err)
	}
	if opts.BatchDelay > 0 {
		db.MaxBatchDelay = opts.BatchDelay
	}
	s := &Store{
		db:         db,
		parts:      opts.Partitions,
		now:        opts.Now,
		batch:      opts.BatchDelay > 0,
		closing:    make(chan struct{}),
		notify:     make([]chan struct{}, opts.Partitions),
		pend:       make(map[pendKey]*pendState),
		sweepEvery: opts.SweepInterval,
	}
	for i := range s.notify {
		s.notify[i] = make(chan struct{})
	}
	if err := db.Update(s.initBuckets); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("embedded: open %s: %w", opts.Path, err)
	}
	if s.sweepEvery > 0 {
		s.sweeperWG.Add(1)
		go s.sweeper()
	}
	return s, nil
}

func (s *Store) initBuckets(tx *bolt.Tx) error {
	for _, name := range allTop {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bMeta)
	if v := meta.Get(keyPartitions); len(v) == 8 {
		old := int(u64of(v))
		if old != s.parts {
			// Keys would move partitions: refuse while anything is queued.
			c := tx.Bucket(bQLen).Cursor()
			for k, n := c.First(); k != nil; k, n = c.Next() {
				if int64(u64of(n)) > 0 {
					return fmt.Errorf("queue has %d partitions and is not empty; drain it before changing to %d: %w", old, s.parts, store.ErrInvalid)
				}
			}
		}
	}
	for p := 0; p < s.parts; p++ {
		if _, err := tx.Bucket(bQueue).CreateBucketIfNotExists(u64key(uint64(p))); err != nil {
			return err
		}
	}
	return meta.Put(keyPartitions, u64key(uint64(s.parts)))
}

// Close stops the sweeper, wakes blocked Reads and closes the file.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		s.sweeperWG.Wait()
		err = s.db.Close()
	})
	if err != nil {
		return fmt.Errorf("embedded: close: %w", err)
	}
	return nil
}

// Ping reports ErrClosed after Close; a local file has nothing else to check.
func (s *Store) Ping(ctx context.Context) error {
	return s.view("ping", func(*bolt.Tx) error { return ctx.Err() })
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

func (s *Store) nowNanos() int64 { return s.now().UnixNano() }

// expiry turns a ttl into an absolute expiry (0 = none).
func (s *Store) expiry(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return s.nowNanos() + int64(ttl)
}

// update runs fn in a write transaction. Errors fn returns keep their
// meaning (ErrConflict…); errors of bbolt itself (I/O, closed) mean nothing
// was stored and wrap ErrUnavailable.
func (s *Store) update(op string, fn func(*bolt.Tx) error) error {
	return s.wrap(op, s.db.Update, fn)
}

// errNoop, returned by an update function that changed nothing, rolls the
// transaction back instead of committing it: a commit writes and fsyncs
// meta pages even when nothing changed, and idle Reads and ClaimDue polls
// would pay that every time. Not for hot (batched) functions: an error
// there makes bbolt rerun the rest of the batch.
var errNoop = errors.New("nothing to commit")

// hot is update through bbolt's Batch when enabled: concurrent writers
// share one transaction and one fsync, and each still returns only after
// the commit. fn may run more than once, so it must not touch anything
// outside the transaction but the variables it resets on every run.
//
// An expected outcome (errNoop, or an error wrapping ErrConflict,
// ErrNotFound or ErrInvalid) must be returned before fn writes anything:
// it is taken out of the batch, so it does not roll back the other
// writers' work (bbolt would roll the whole batch back and rerun it).
func (s *Store) hot(op string, fn func(*bolt.Tx) error) error {
	if !s.batch {
		return s.update(op, fn)
	}
	var outcome error
	err := s.wrap(op, s.db.Batch, func(tx *bolt.Tx) error {
		outcome = nil
		err := fn(tx)
		if expected(err) {
			outcome = err
			return nil
		}
		return err
	})
	switch {
	case err != nil:
		return err
	case outcome == nil || outcome == errNoop:
		return nil
	default:
		return fmt.Errorf("embedded: %s: %w", op, outcome)
	}
}

func expected(err error) bool {
	return err != nil && (err == errNoop || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) ||
		errors.Is(err, store.ErrInvalid))
}

func (s *Store) view(op string, fn func(*bolt.Tx) error) error {
	return s.wrap(op, s.db.View, fn)
}

func (s *Store) wrap(op string, run func(func(*bolt.Tx) error) error, fn func(*bolt.Tx) error) error {
	if s.isClosed() {
		return fmt.Errorf("embedded: %s: %w", op, store.ErrClosed)
	}
	var fnErr error
	err := run(func(tx *bolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	switch {
	case err == nil || (fnErr == errNoop && errors.Is(err, errNoop)):
		return nil
	case fnErr != nil && errors.Is(err, fnErr):
		return fmt.Errorf("embedded: %s: %w", op, err)
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return fmt.Errorf("embedded: %s: %w", op, store.ErrClosed)
	default:
		return fmt.Errorf("embedded: %s: %w: %w", op, store.ErrUnavailable, err)
	}
}

func u64of(b []byte) uint64 {
	d := dec{b: b}
	return d.u64()
}

func invalid(op, what string) error {
	return fmt.Errorf("embedded: %s: %s: %w", op, what, store.ErrInvalid)
}
