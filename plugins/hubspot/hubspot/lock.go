package hubspot

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// locker serialises work on the same person or record, within this process
// and across hub replicas. HubSpot has no transactions and its search index
// trails writes, so two concurrent upserts of one person would both find
// nothing and both create a contact.
//
// In-process waiters queue on a channel per key; across replicas a lease is
// held in the host KV (compare-and-swap, with a TTL so a crashed replica's
// lease runs out). Keys are always taken in sorted order, so two callers
// with overlapping key sets cannot deadlock.
type locker struct {
	kv  sdk.KV
	ttl time.Duration

	mu    sync.Mutex
	local map[string]*localLock
}

type localLock struct {
	ch   chan struct{}
	refs int
}

func newLocker(kv sdk.KV, ttl time.Duration) *locker {
	return &locker{kv: kv, ttl: ttl, local: map[string]*localLock{}}
}

// hashKey keeps customer identities (phones, emails) out of KV key names,
// which the hub may log.
func hashKey(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}

// lock takes every key and returns the function that releases them. The
// returned context expires shortly before the leases do, so work done under
// the lock never outlives it.
func (l *locker) lock(ctx context.Context, keys ...string) (context.Context, func(), error) {
	keys = uniqueSorted(keys)
	var held []string
	release := func() {
		for i := len(held) - 1; i >= 0; i-- {
			l.unlockLocal(held[i])
		}
	}
	for _, k := range keys {
		if err := l.lockLocal(ctx, k); err != nil {
			release()
			return nil, nil, err
		}
		held = append(held, k)
	}
	deadline := time.Now().Add(l.ttl)
	token := newToken()
	var leased []string
	releaseAll := func() {
		// Release even if the caller's context is done: a lease left
		// behind blocks this person until its TTL runs out.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for i := len(leased) - 1; i >= 0; i-- {
			l.releaseLease(rctx, leased[i], token)
		}
		release()
	}
	for _, k := range keys {
		if err := l.acquireLease(ctx, k, token); err != nil {
			releaseAll()
			return nil, nil, err
		}
		leased = append(leased, k)
	}
	wctx, cancel := context.WithDeadline(ctx, deadline.Add(-l.ttl/10))
	return wctx, func() { cancel(); releaseAll() }, nil
}

func (l *locker) lockLocal(ctx context.Context, k string) error {
	l.mu.Lock()
	ll := l.local[k]
	if ll == nil {
		ll = &localLock{ch: make(chan struct{}, 1)}
		l.local[k] = ll
	}
	ll.refs++
	l.mu.Unlock()
	select {
	case ll.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		ll.refs--
		if ll.refs == 0 {
			delete(l.local, k)
		}
		l.mu.Unlock()
		return fmt.Errorf("hubspot: waiting for a concurrent update of the same record: %w", ctx.Err())
	}
}

func (l *locker) unlockLocal(k string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ll := l.local[k]
	<-ll.ch
	ll.refs--
	if ll.refs == 0 {
		delete(l.local, k)
	}
}

// A free lease is an absent key or an empty value (released).
func (l *locker) acquireLease(ctx context.Context, k, token string) error {
	key := "lock/" + hashKey(k)
	backoff := 5 * time.Millisecond
	for {
		val, ver, err := l.kv.Get(ctx, key)
		switch {
		case errors.Is(err, sdk.ErrNotFound):
			ver = 0
		case err != nil:
			return sdk.Retryable(fmt.Errorf("hubspot: read lock from the host KV: %w", err), 0)
		}
		if err != nil || len(val) == 0 {
			_, err = l.kv.CompareAndSwap(ctx, key, ver, []byte(token), l.ttl)
			if err == nil {
				return nil
			}
			if !errors.Is(err, sdk.ErrConflict) {
				return sdk.Retryable(fmt.Errorf("hubspot: write lock to the host KV: %w", err), 0)
			}
			continue // someone else took it first: look again
		}
		// Held by another replica: poll until it is released or expires.
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return sdk.Retryable(fmt.Errorf("hubspot: another hub replica is updating the same record: %w", ctx.Err()), 0).
				WithReason("locked")
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

func (l *locker) releaseLease(ctx context.Context, k, token string) {
	key := "lock/" + hashKey(k)
	val, ver, err := l.kv.Get(ctx, key)
	if err != nil || string(val) != token {
		return // expired and maybe taken by someone else: not ours to free
	}
	// Compare-and-swap to empty rather than Delete, so a lease that expired
	// and was re-taken between Get and here is left alone.
	_, _ = l.kv.CompareAndSwap(ctx, key, ver, nil, l.ttl)
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func uniqueSorted(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	j := 0
	for i, s := range out {
		if s == "" || (i > 0 && s == out[i-1]) {
			continue
		}
		out[j] = s
		j++
	}
	return out[:j]
}
