package assign

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// teamLocks serialise one team's assignment decisions: an in-process mutex
// so that goroutines of one replica queue up instead of polling the
// Store, then a Store lease so that replicas take turns.
type teamLocks struct {
	mu sync.Mutex
	m  map[string]*sync.Mutex
}

func (l *teamLocks) get(team string) *sync.Mutex {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*sync.Mutex{}
	}
	m, ok := l.m[team]
	if !ok {
		m = &sync.Mutex{}
		l.m[team] = m
	}
	return m
}

func leaseName(team string) string { return "assign:team:" + team }

// lockTeam takes team's lock; call the returned function to give it back.
// The lease is advisory (a holder that stalls past LockTTL loses it): the
// per-agent compare-and-swap, not the lease, is what keeps every agent
// within capacity, so a lost lease can cost fairness for a moment, never
// correctness.
func (a *Assigner) lockTeam(ctx context.Context, team string) (func(), error) {
	mu := a.locks.get(team)
	mu.Lock()
	name := leaseName(team)
	wait := time.Millisecond
	deadline := time.Now().Add(2 * a.o.LockTTL)
	for {
		ok, err := a.o.Store.Acquire(ctx, name, a.o.Replica, a.o.LockTTL)
		if err != nil {
			mu.Unlock()
			return nil, fmt.Errorf("lock team %s: %w", team, err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			mu.Unlock()
			return nil, fmt.Errorf("lock team %s: still held by another replica after %s", team, 2*a.o.LockTTL)
		}
		// Another replica holds it for a few milliseconds: back off with
		// jitter so that waiting replicas do not retry in step.
		t := time.NewTimer(wait/2 + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			mu.Unlock()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
	return func() {
		// A fresh context: a cancelled caller must still give the lease
		// back, or the team waits LockTTL.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = a.o.Store.Release(rctx, name, a.o.Replica)
		cancel()
		mu.Unlock()
	}, nil
}
