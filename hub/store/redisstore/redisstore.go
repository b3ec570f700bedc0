// Package redisstore is the Store shared by many hub replicas: Redis through
// go-redis's UniversalClient, so a single node, Sentinel or Cluster all work.
//
// Key layout (prefix default "sb:"). Every group of keys that one Lua
// script or MULTI touches shares a cluster hash tag, so it lives in one slot:
//
//	<p>q:{N}                 queue partition N (stream, one consumer group)
//	<p>lease:<name>          lease (string: owner, PX ttl)
//	<p>kv:{ns}:k:<key>       KV value (hash v, ver); <p>kv:{ns}:i index (zset);
//	<p>kv:{ns}:seq           version sequence of the namespace
//	<p>once:<key>            dedupe mark (SET NX PX)
//	<p>ctr:<key>             counter
//	<p>hist:{conv}:t / :n    history turns (list) and total (counter)
//	<p>tmr:{t}:z / :p :d :g :a :seq   timers: schedule (zset) and fields (hashes)
//	<p>dead:{d}:h / :m / :i  dead letters: JSON, list member, order (zset)
//	<p>log:{name}            log (stream, trimmed with MINID)
//
// A KV namespace, all timers and all dead letters each live in one cluster
// slot; queue partitions and conversations spread over the cluster.
//
// Acked queue entries are deleted (XACK and XDEL in one script), so a
// partition's stream holds exactly the entries not yet done and is never
// trimmed by length, which could drop unprocessed messages.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// Options configure Open. Give one of Client, Universal or URL.
type Options struct {
	// URL of the server:
	//   redis://[user:pass@]host:port/db?opts, rediss://…     single node
	//   redis+sentinel://host:port?master_name=m&addr=h2:p2   Sentinel
	//   redis+cluster://host:port?addr=h2:p2                  Cluster
	// (rediss+sentinel, rediss+cluster for TLS). Query options are
	// go-redis's (dial_timeout, pool_size…).
	URL string
	// Universal options, used when URL is empty.
	Universal *redis.UniversalOptions
	// Client to use as is; Close then leaves it open.
	Client redis.UniversalClient
	// Prefix of every key (default "sb:"). Must not contain braces.
	Prefix string
	// Partitions of the queue (default 16). Changing it moves keys between
	// partitions: drain the queue first.
	Partitions int
	// Group is the consumer group of the queue (default "switchboard").
	Group string
}

// Store implements store.Store on Redis.
type Store struct {
	rdb redis.UniversalClient
	// c runs the single commands and scripts: go-redis's autopipeliner on
	// rdb, which sends the commands of concurrent callers together, one
	// write and one read for many (the hub issues dozens per message from
	// hundreds of goroutines). Blocking reads and explicit pipelines use
	// rdb. Each call still returns only once Redis answered it.
	c         redis.UniversalClient
	ownClient bool
	prefix    string
	parts     int
	group     string

	mu   sync.Mutex
	pend map[pendKey]*pendState
}

var _ store.Store = (*Store)(nil)

// Open connects, checks the server answers and creates the consumer groups.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Prefix == "" {
		opts.Prefix = "sb:"
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redisstore: prefix %q contains a brace: %w", opts.Prefix, store.ErrInvalid)
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 16
	}
	if opts.Group == "" {
		opts.Group = "switchboard"
	}
	s := &Store{
		rdb:    opts.Client,
		prefix: opts.Prefix,
		parts:  opts.Partitions,
		group:  opts.Group,
		pend:   make(map[pendKey]*pendState),
	}
	if s.rdb == nil {
		rdb, err := newClient(opts)
		if err != nil {
			return nil, err
		}
		s.rdb, s.ownClient = rdb, true
	}
	s.c = autoPipeline(s.rdb)
	for p := 0; p < s.parts; p++ {
		if err := s.createGroup(ctx, p); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// poolSize leaves room for one blocked XREADGROUP per owned partition on
// top of go-redis's default, so blocked readers cannot starve other calls.
func (o Options) poolSize() int {
	return max(10*runtime.GOMAXPROCS(0), 2*o.Partitions+10)
}

func newClient(opts Options) (redis.UniversalClient, error) {
	if opts.URL == "" {
		u := opts.Universal
		if u == nil {
			u = &redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}}
		}
		if u.PoolSize == 0 {
			u.PoolSize = opts.poolSize()
		}
		return redis.NewUniversalClient(u), nil
	}
	scheme, rest, ok := strings.Cut(opts.URL, "://")
	if !ok {
		return nil, fmt.Errorf("redisstore: URL %q has no scheme: %w", opts.URL, store.ErrInvalid)
	}
	base, mode, _ := strings.Cut(scheme, "+")
	plain := base + "://" + rest
	switch mode {
	case "":
		o, err := redis.ParseURL(plain)
		if err != nil {
			return nil, fmt.Errorf("redisstore: URL: %w: %w", err, store.ErrInvalid)
		}
		if o.PoolSize == 0 {
			o.PoolSize = opts.poolSize()
		}
		return redis.NewClient(o), nil
	case "sentinel":
		o, err := redis.ParseFailoverURL(plain)
		if err != nil {
			return nil, fmt.Errorf("redisstore: URL: %w: %w", err, store.ErrInvalid)
		}
		if o.PoolSize == 0 {
			o.PoolSize = opts.poolSize()
		}
		return redis.NewFailoverClient(o), nil
	case "cluster":
		o, err := redis.ParseClusterURL(plain)
		if err != nil {
			return nil, fmt.Errorf("redisstore: URL: %w: %w", err, store.ErrInvalid)
		}
		if o.PoolSize == 0 {
			o.PoolSize = opts.poolSize()
		}
		return redis.NewClusterClient(o), nil
	}
	return nil, fmt.Errorf("redisstore: URL scheme %q: %w", scheme, store.ErrInvalid)
}

// autoPipeline returns the client's shared blocking autopipeliner (a single
// ordered batch stream: a lone command goes at once, concurrent ones are
// sent together), or the client itself when it has none. The client's
// Close stops it.
func autoPipeline(rdb redis.UniversalClient) redis.UniversalClient {
	var (
		ap  *redis.AutoPipeliner
		err error
	)
	switch c := rdb.(type) {
	case *redis.Client:
		ap, err = c.AutoPipeline()
	case *redis.ClusterClient:
		ap, err = c.AutoPipeline()
	default:
		return rdb
	}
	if err != nil {
		return rdb
	}
	return ap
}

// Client is the underlying client, for callers that share it (the admin
// API's rate limiter).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	return s.wrap("ping", s.c.Ping(ctx).Err())
}

// Close implements store.Store. A Client given in Options stays open.
func (s *Store) Close() error {
	if !s.ownClient {
		return nil
	}
	if err := s.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("redisstore: close: %w", err)
	}
	return nil
}

// wrap adds context to err and classifies it: failures to reach Redis
// wrap store.ErrUnavailable, so ingress answers 503 and the provider retries.
func (s *Store) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.ErrClosed):
		return fmt.Errorf("redisstore: %s: %w", op, store.ErrClosed)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("redisstore: %s: %w", op, err)
	case unavailable(err):
		return fmt.Errorf("redisstore: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

func unavailable(err error) bool {
	var netErr net.Error
	if errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) {
		return true
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		// Server replies that mean "not now" rather than "wrong request".
		for _, p := range []string{"LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "BUSY ", "NOREPLICAS"} {
			if strings.HasPrefix(rerr.Error(), p) {
				return true
			}
		}
	}
	return false
}

func invalid(op, what string) error {
	return fmt.Errorf("redisstore: %s: %s: %w", op, what, store.ErrInvalid)
}

// tagEscaper keeps a name usable as a cluster hash tag: a brace inside it
// would end the tag early (or make it empty) and split one conversation's
// keys over two slots. Escaping '%' too keeps distinct names distinct.
var tagEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func tag(name string) string { return tagEscaper.Replace(name) }
