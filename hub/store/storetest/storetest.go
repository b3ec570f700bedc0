// Package storetest is the conformance suite every store.Store passes.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Opener {
//			dir := t.TempDir() // one data set per test
//			return func() store.Store { return mustOpen(t, dir) }
//		})
//	}
//
// Time-dependent cases use short TTLs and poll with a deadline, so they run
// against a real clock (Redis) as well as an injected one.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// Opener opens a store on one data set. Calling it again opens another
// instance on the same data, as a restarted process would; the suite closes
// the previous instance first (an embedded file is locked while open).
// Instances are closed by the suite or must be closed with t.Cleanup.
type Opener func() store.Store

// NewData returns an Opener for a fresh, empty data set private to t.
type NewData func(t *testing.T) Opener

// Run runs every conformance test against the store made by newData.
func Run(t *testing.T, newData NewData) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Queue", queueTests},
		{"Leases", leaseTests},
		{"KV", kvTests},
		{"Dedupe", dedupeTests},
		{"Counters", counterTests},
		{"History", historyTests},
		{"Timers", timerTests},
		{"DeadLetters", deadTests},
		{"Logs", logTests},
		{"Lifecycle", lifecycleTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					open := newData(t)
					tc.fn(t, &env{open: open})
				})
			}
		})
	}
}

type test struct {
	name string
	fn   func(t *testing.T, e *env)
}

// env gives a test its store and a way to restart it.
type env struct {
	open Opener
	cur  store.Store
}

// store returns the current instance, opening one if needed.
func (e *env) store() store.Store {
	if e.cur == nil {
		e.cur = e.open()
	}
	return e.cur
}

// restart closes the current instance (nothing acked or completed is
// flushed by Close beyond what every call already made durable) and opens
// a new one on the same data.
func (e *env) restart(t *testing.T) store.Store {
	t.Helper()
	if e.cur != nil {
		if err := e.cur.Close(); err != nil {
			t.Fatalf("close before restart: %v", err)
		}
	}
	e.cur = e.open()
	return e.cur
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes. Used for
// expiry, never as a fixed sleep.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// must(f()).of(t) returns f's value or fails t; Go cannot pass t next to
// a multi-value call, hence the two steps.
func must[T any](v T, err error) result[T] { return result[T]{v, err} }

type result[T any] struct {
	v   T
	err error
}

func (r result[T]) of(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

// expiryWait bounds how long a short TTL may take to be observed expired.
const expiryWait = 5 * time.Second
