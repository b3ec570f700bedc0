package sdk

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// HintedKV is a KV that remembers the last value and version this process
// read or wrote per key (a bounded number of keys). Every call still goes
// to the host; Hint lets a read-modify-write start from the remembered
// version and skip its read: each KV call is a round trip to the hub, and
// a plugin process is usually the only writer of its records. Because
// versions are never reused, a swap from a stale hint fails with
// ErrConflict instead of losing a write; read and retry then.
type HintedKV struct {
	KV
	mu sync.Mutex
	m  map[string]kvHint
}

type kvHint struct {
	val []byte
	ver int64
}

// hintedKVSize bounds the memory; plugin records are small.
const hintedKVSize = 16384

// NewHintedKV wraps kv.
func NewHintedKV(kv KV) *HintedKV { return &HintedKV{KV: kv, m: map[string]kvHint{}} }

// Hint returns the remembered value and version, or nil and 0 (absent:
// the version a swap creating the key expects) for a key not seen.
func (h *HintedKV) Hint(key string) ([]byte, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.m[key]
	return e.val, e.ver
}

func (h *HintedKV) remember(key string, val []byte, ver int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.m[key]; !ok && len(h.m) >= hintedKVSize {
		for k := range h.m {
			delete(h.m, k)
			break
		}
	}
	h.m[key] = kvHint{val: val, ver: ver}
}

// note remembers what a call saw, or forgets the key when it failed (its
// outcome is unknown).
func (h *HintedKV) note(key string, val []byte, ver int64, err error) {
	if err != nil {
		h.forget(key)
		return
	}
	h.remember(key, bytes.Clone(val), ver)
}

func (h *HintedKV) forget(key string) {
	h.mu.Lock()
	delete(h.m, key)
	h.mu.Unlock()
}

func (h *HintedKV) Get(ctx context.Context, key string) ([]byte, int64, error) {
	v, ver, err := h.KV.Get(ctx, key)
	h.note(key, v, ver, err)
	return v, ver, err
}

func (h *HintedKV) Put(ctx context.Context, key string, val []byte, ttl time.Duration) (int64, error) {
	ver, err := h.KV.Put(ctx, key, val, ttl)
	h.note(key, val, ver, err)
	return ver, err
}

func (h *HintedKV) CompareAndSwap(ctx context.Context, key string, expect int64, val []byte, ttl time.Duration) (int64, error) {
	ver, err := h.KV.CompareAndSwap(ctx, key, expect, val, ttl)
	h.note(key, val, ver, err)
	return ver, err
}

func (h *HintedKV) Delete(ctx context.Context, key string) error {
	h.forget(key)
	return h.KV.Delete(ctx, key)
}
