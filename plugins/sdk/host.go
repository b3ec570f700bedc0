package sdk

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Host is what the hub offers a plugin, handed over in Configure.
type Host interface {
	// KV is a key-value space private to this plugin instance, shared by all
	// hub replicas: the place for state that must survive a restart, such as
	// a rotating OAuth refresh token.
	KV() KV
	// Logger logs into the hub's structured log, tagged with the instance.
	Logger() *slog.Logger
}

// KV is a small versioned key-value store. Versions start at 1 and grow on
// every write, so CompareAndSwap can detect a concurrent writer.
type KV interface {
	// Get returns the value and its version, or ErrNotFound.
	Get(ctx context.Context, key string) (value []byte, version int64, err error)
	// Put writes unconditionally; ttl 0 keeps the key forever.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) (version int64, err error)
	// CompareAndSwap writes only if the key is at expectVersion (0: the key
	// must not exist), and returns ErrConflict otherwise. Versions are
	// never reused, not even after Delete or expiry, so a version a plugin
	// remembers either is current or makes the swap fail.
	CompareAndSwap(ctx context.Context, key string, expectVersion int64, value []byte, ttl time.Duration) (version int64, err error)
	Delete(ctx context.Context, key string) error
}

// HostBackend is what the hub implements to serve Host to a plugin. The hub
// namespaces keys per plugin instance before they reach its store.
type HostBackend interface {
	KV
	Log(ctx context.Context, level slog.Level, msg string, attrs map[string]string)
}

// MemoryHost is an in-memory HostBackend for tests and for running a plugin
// without a hub. It is safe for concurrent use.
type MemoryHost struct {
	mu     sync.Mutex
	items  map[string]memItem
	seq    int64 // versions are never reused, as in the hub's store
	now    func() time.Time
	logger *slog.Logger
	// Logs records every Log call, for assertions.
	logs []LogRecord
}

// LogRecord is one Log call seen by a MemoryHost.
type LogRecord struct {
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

type memItem struct {
	value   []byte
	version int64
	expires time.Time
}

// NewMemoryHost returns an empty in-memory host; logger may be nil.
func NewMemoryHost(logger *slog.Logger) *MemoryHost {
	return &MemoryHost{items: map[string]memItem{}, now: time.Now, logger: logger}
}

func (m *MemoryHost) live(key string) (memItem, bool) {
	it, ok := m.items[key]
	if ok && !it.expires.IsZero() && !m.now().Before(it.expires) {
		delete(m.items, key)
		return memItem{}, false
	}
	return it, ok
}

func (m *MemoryHost) Get(_ context.Context, key string) ([]byte, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.live(key)
	if !ok {
		return nil, 0, ErrNotFound
	}
	return append([]byte(nil), it.value...), it.version, nil
}

func (m *MemoryHost) put(key string, value []byte, ttl time.Duration) int64 {
	m.seq++
	it := memItem{value: append([]byte(nil), value...), version: m.seq}
	if ttl > 0 {
		it.expires = m.now().Add(ttl)
	}
	m.items[key] = it
	return it.version
}

func (m *MemoryHost) Put(_ context.Context, key string, value []byte, ttl time.Duration) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.put(key, value, ttl), nil
}

func (m *MemoryHost) CompareAndSwap(_ context.Context, key string, expect int64, value []byte, ttl time.Duration) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, _ := m.live(key)
	if it.version != expect {
		return 0, ErrConflict
	}
	return m.put(key, value, ttl), nil
}

func (m *MemoryHost) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.items, key)
	return nil
}

func (m *MemoryHost) Log(ctx context.Context, level slog.Level, msg string, attrs map[string]string) {
	m.mu.Lock()
	m.logs = append(m.logs, LogRecord{Level: level, Message: msg, Attrs: attrs})
	m.mu.Unlock()
	if m.logger != nil {
		args := make([]any, 0, 2*len(attrs))
		for k, v := range attrs {
			args = append(args, k, v)
		}
		m.logger.Log(ctx, level, msg, args...)
	}
}

// Logs returns a copy of what was logged so far.
func (m *MemoryHost) Logs() []LogRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]LogRecord(nil), m.logs...)
}
