package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
)

var queueTests = []test{
	{"PartitionOfIsStable", testPartitionOf},
	{"OrderWithinPartition", testQueueOrder},
	{"AckAndDepth", testQueueAckDepth},
	{"BlockingReadWakesOnEnqueue", testQueueWake},
	{"BlockingReadTimesOut", testQueueBlockTimeout},
	{"PendingRereadAfterRestart", testQueueRestart},
	{"ReclaimAfterIdle", testQueueReclaim},
	{"TakeoverReclaimsAllInOrder", testQueueTakeover},
	{"TakeoverAfterRestartIncludesOwnPending", testQueueTakeoverRestart},
	{"ConcurrentEnqueue", testQueueConcurrent},
	{"InvalidArguments", testQueueInvalid},
}

func testPartitionOf(t *testing.T, e *env) {
	s := e.store()
	if s.Partitions() < 1 {
		t.Fatalf("Partitions() = %d", s.Partitions())
	}
	for _, k := range []string{"", "a", "zalo:123", "wa:+84901234567"} {
		p := s.PartitionOf(k)
		if p != store.PartitionFor(k, s.Partitions()) || p < 0 || p >= s.Partitions() {
			t.Fatalf("PartitionOf(%q) = %d", k, p)
		}
	}
}

// drain reads every partition until n entries came or the deadline passes.
func drain(t *testing.T, s store.Store, consumer string, n int) []store.Entry {
	t.Helper()
	ctx := ctxT(t)
	var got []store.Entry
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d entries", len(got), n)
		}
		for p := 0; p < s.Partitions(); p++ {
			got = append(got, must(s.Read(ctx, p, consumer, 100, 0)).of(t)...)
		}
	}
	return got
}

func testQueueOrder(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	keys := []string{"conv-a", "conv-b", "conv-c", "conv-d", "conv-e"}
	before := time.Now().Add(-time.Second)
	ids := map[string]bool{}
	for i := 0; i < 10; i++ {
		for _, k := range keys {
			id := must(s.Enqueue(ctx, k, []byte(fmt.Sprintf("%s/%d", k, i)))).of(t)
			if ids[id] {
				t.Fatalf("duplicate id %s", id)
			}
			ids[id] = true
		}
	}
	got := drain(t, s, "c1", 50)
	next := map[string]int{}
	for _, en := range got {
		if want := fmt.Sprintf("%s/%d", en.Key, next[en.Key]); string(en.Payload) != want {
			t.Fatalf("key %s: got %q, want %q (order broken)", en.Key, en.Payload, want)
		}
		next[en.Key]++
		if en.Partition != s.PartitionOf(en.Key) {
			t.Fatalf("entry of %s in partition %d, want %d", en.Key, en.Partition, s.PartitionOf(en.Key))
		}
		if en.Deliveries != 1 || !ids[en.ID] {
			t.Fatalf("entry %+v: want first delivery of a known id", en)
		}
		if en.EnqueuedAt.Before(before) || en.EnqueuedAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("EnqueuedAt %v not around now", en.EnqueuedAt)
		}
	}
	for _, k := range keys {
		if next[k] != 10 {
			t.Fatalf("key %s: %d entries, want 10", k, next[k])
		}
	}
	// Everything was handed out: nothing new for anyone.
	for p := 0; p < s.Partitions(); p++ {
		if got := must(s.Read(ctx, p, "c2", 10, 0)).of(t); len(got) != 0 {
			t.Fatalf("partition %d handed out %d entries twice", p, len(got))
		}
	}
}

func testQueueAckDepth(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	if d := must(s.Depth(ctx)).of(t); d != 0 {
		t.Fatalf("empty depth = %d", d)
	}
	for i := 0; i < 3; i++ {
		must(s.Enqueue(ctx, "k", []byte{byte(i)})).of(t)
	}
	if d := must(s.Depth(ctx)).of(t); d != 3 {
		t.Fatalf("depth = %d, want 3", d)
	}
	p := s.PartitionOf("k")
	got := must(s.Read(ctx, p, "c1", 10, 0)).of(t)
	if len(got) != 3 {
		t.Fatalf("read %d, want 3", len(got))
	}
	if d := must(s.Depth(ctx)).of(t); d != 3 {
		t.Fatalf("depth with 3 pending = %d, want 3 (pending is not done)", d)
	}
	noErr(t, s.Ack(ctx, p, got[0].ID, got[1].ID))
	noErr(t, s.Ack(ctx, p, got[0].ID)) // again: ignored
	noErr(t, s.Ack(ctx, p))            // nothing: fine
	if d := must(s.Depth(ctx)).of(t); d != 1 {
		t.Fatalf("depth = %d, want 1", d)
	}
	noErr(t, s.Ack(ctx, p, got[2].ID))
	if d := must(s.Depth(ctx)).of(t); d != 0 {
		t.Fatalf("depth = %d, want 0", d)
	}
}

func testQueueWake(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	p := s.PartitionOf("wake")
	type res struct {
		got []store.Entry
		err error
		at  time.Time
	}
	done := make(chan res, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		got, err := s.Read(ctx, p, "c1", 10, 10*time.Second)
		done <- res{got, err, time.Now()}
	}()
	<-started
	time.Sleep(100 * time.Millisecond) // let the read block; correctness does not depend on it
	sent := time.Now()
	must(s.Enqueue(ctx, "wake", []byte("x"))).of(t)
	select {
	case r := <-done:
		noErr(t, r.err)
		if len(r.got) != 1 || string(r.got[0].Payload) != "x" {
			t.Fatalf("woke with %+v", r.got)
		}
		if lag := r.at.Sub(sent); lag > 2*time.Second {
			t.Fatalf("blocked read woke %v after the enqueue", lag)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("blocked read did not wake on enqueue")
	}
}

func testQueueBlockTimeout(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	start := time.Now()
	got, err := s.Read(ctx, 0, "c1", 10, 150*time.Millisecond)
	noErr(t, err)
	if len(got) != 0 {
		t.Fatalf("got %d entries from an empty queue", len(got))
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 5*time.Second {
		t.Fatalf("blocking read returned after %v, want about 150ms", el)
	}
	start = time.Now()
	must(s.Read(ctx, 0, "c1", 10, 0)).of(t)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("non-blocking read took %v", el)
	}
}

func testQueueRestart(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	p := s.PartitionOf("conv")
	for i := 0; i < 4; i++ {
		must(s.Enqueue(ctx, "conv", []byte{byte('a' + i)})).of(t)
	}
	got := must(s.Read(ctx, p, "worker-1", 3, 0)).of(t)
	if len(got) != 3 {
		t.Fatalf("read %d, want 3", len(got))
	}
	noErr(t, s.Ack(ctx, p, got[0].ID))

	// Crash: b and c are pending with worker-1, d was never delivered.
	s = e.restart(t)
	must(s.Enqueue(ctx, "conv", []byte("e"))).of(t)

	// Another consumer gets only new entries, never worker-1's pending.
	other := must(s.Read(ctx, p, "worker-2", 10, 0)).of(t)
	if len(other) != 2 || string(other[0].Payload) != "d" || string(other[1].Payload) != "e" {
		t.Fatalf("worker-2 read %v, want d e", payloads(other))
	}
	// worker-1 first gets its own pending, one at a time, without repeats.
	var re []store.Entry
	for i := 0; i < 2; i++ {
		one := must(s.Read(ctx, p, "worker-1", 1, 0)).of(t)
		if len(one) != 1 {
			t.Fatalf("pending read %d returned %d entries", i, len(one))
		}
		re = append(re, one...)
	}
	if string(re[0].Payload) != "b" || string(re[1].Payload) != "c" {
		t.Fatalf("pending re-read %v, want b c", payloads(re))
	}
	for _, en := range re {
		if en.Deliveries != 2 {
			t.Fatalf("pending entry %s: Deliveries %d, want 2", en.Payload, en.Deliveries)
		}
	}
	// Then new entries only (none left).
	if more := must(s.Read(ctx, p, "worker-1", 10, 0)).of(t); len(more) != 0 {
		t.Fatalf("after the drain worker-1 read %v", payloads(more))
	}
	noErr(t, s.Ack(ctx, p, re[0].ID, re[1].ID, other[0].ID, other[1].ID))
	if d := must(s.Depth(ctx)).of(t); d != 0 {
		t.Fatalf("depth = %d", d)
	}
}

func payloads(es []store.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Payload))
	}
	return out
}

func testQueueReclaim(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	p := s.PartitionOf("r")
	for i := 0; i < 3; i++ {
		must(s.Enqueue(ctx, "r", []byte{byte('a' + i)})).of(t)
	}
	got := must(s.Read(ctx, p, "dead-worker", 2, 0)).of(t) // a, b pending; c never delivered
	if len(got) != 2 {
		t.Fatalf("read %d", len(got))
	}
	if re := must(s.Reclaim(ctx, p, "rescuer", time.Hour, 10)).of(t); len(re) != 0 {
		t.Fatalf("reclaimed %v before the idle time", payloads(re))
	}
	var re []store.Entry
	eventually(t, expiryWait, "pending entries reclaimable after idle", func() bool {
		re = must(s.Reclaim(ctx, p, "rescuer", 150*time.Millisecond, 10)).of(t)
		return len(re) > 0
	})
	if len(re) != 2 || string(re[0].Payload) != "a" || string(re[1].Payload) != "b" {
		t.Fatalf("reclaimed %v, want a b", payloads(re))
	}
	for _, en := range re {
		if en.Deliveries != 2 || en.Partition != p || en.Key != "r" {
			t.Fatalf("reclaimed entry %+v", en)
		}
	}
	// Just claimed: not idle any more.
	if again := must(s.Reclaim(ctx, p, "third", time.Minute, 10)).of(t); len(again) != 0 {
		t.Fatalf("reclaimed twice: %v", payloads(again))
	}
	noErr(t, s.Ack(ctx, p, re[0].ID, re[1].ID))
	if d := must(s.Depth(ctx)).of(t); d != 1 {
		t.Fatalf("depth = %d, want 1 (c)", d)
	}
}

func testQueueConcurrent(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.Enqueue(ctx, "hot", []byte(fmt.Sprintf("%d/%03d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := drain(t, s, "c", writers*each)
	last := map[byte]string{}
	for _, en := range got {
		w := en.Payload[0]
		if string(en.Payload) <= last[w] {
			t.Fatalf("writer %c: %s after %s", w, en.Payload, last[w])
		}
		last[w] = string(en.Payload)
	}
	if len(got) != writers*each {
		t.Fatalf("got %d", len(got))
	}
}

func testQueueInvalid(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	_, err := s.Read(ctx, s.Partitions(), "c", 1, 0)
	wantErr(t, err, store.ErrInvalid)
	_, err = s.Read(ctx, -1, "c", 1, 0)
	wantErr(t, err, store.ErrInvalid)
	_, err = s.Read(ctx, 0, "", 1, 0)
	wantErr(t, err, store.ErrInvalid)
	_, err = s.Reclaim(ctx, 0, "c", time.Second, 0)
	wantErr(t, err, store.ErrInvalid)
}

// A new partition owner reclaims everything pending (minIdle 0) before
// reading new entries, and gets the dead owner's entries in order.
func testQueueTakeover(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	p := s.PartitionOf("conv")
	for i := 0; i < 25; i++ {
		must(s.Enqueue(ctx, "conv", []byte(fmt.Sprintf("%02d", i)))).of(t)
	}
	first := must(s.Read(ctx, p, "old-owner", 20, 0)).of(t)
	noErr(t, s.Ack(ctx, p, first[0].ID))
	var got []store.Entry
	for {
		re := must(s.Reclaim(ctx, p, "new-owner", 0, 7)).of(t)
		if len(re) == 0 {
			break
		}
		got = append(got, re...)
		if len(got) > 19 {
			t.Fatalf("reclaimed %d entries, more than the 19 pending", len(got))
		}
	}
	if len(got) != 19 {
		t.Fatalf("reclaimed %d of 19 pending", len(got))
	}
	for i, en := range got {
		if want := fmt.Sprintf("%02d", i+1); string(en.Payload) != want || en.Deliveries != 2 {
			t.Fatalf("reclaimed #%d = %s (deliveries %d), want %s (2)", i, en.Payload, en.Deliveries, want)
		}
	}
	rest := must(s.Read(ctx, p, "new-owner", 100, 0)).of(t)
	if len(rest) != 5 || string(rest[0].Payload) != "20" {
		t.Fatalf("then read %v, want 20..24", payloads(rest))
	}
}

// After a restart, a takeover's Reclaim also hands out the consumer's own
// pending entries from the previous run, merged in order with those others
// left, each once; Read then returns only new entries.
func testQueueTakeoverRestart(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	p := s.PartitionOf("conv")
	for i := 0; i < 6; i++ {
		must(s.Enqueue(ctx, "conv", []byte{byte('a' + i)})).of(t)
	}
	must(s.Read(ctx, p, "me", 2, 0)).of(t)    // a b
	must(s.Read(ctx, p, "other", 2, 0)).of(t) // c d
	must(s.Read(ctx, p, "me", 1, 0)).of(t)    // e
	s = e.restart(t)
	must(s.Enqueue(ctx, "conv", []byte("g"))).of(t)
	var got []store.Entry
	for i := 0; ; i++ {
		re := must(s.Reclaim(ctx, p, "me", 0, 2)).of(t)
		if len(re) == 0 {
			break
		}
		if i > 5 {
			t.Fatal("takeover does not end")
		}
		got = append(got, re...)
	}
	if fmt.Sprint(payloads(got)) != "[a b c d e]" {
		t.Fatalf("takeover reclaimed %v, want [a b c d e]", payloads(got))
	}
	rest := must(s.Read(ctx, p, "me", 10, 0)).of(t)
	if fmt.Sprint(payloads(rest)) != "[f g]" {
		t.Fatalf("then read %v, want [f g]", payloads(rest))
	}
}
