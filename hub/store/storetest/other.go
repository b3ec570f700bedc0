package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
)

var historyTests = []test{
	{"KeepLastN", testHistoryTrim},
	{"TTLRefreshedOnAppend", testHistoryTTL},
	{"ConcurrentAppends", testHistoryConcurrent},
}

func testHistoryTrim(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	if h := must(s.History(ctx, "c")).of(t); len(h) != 0 {
		t.Fatalf("empty history: %d turns", len(h))
	}
	for i := 0; i < 25; i++ {
		n := must(s.AppendTurn(ctx, "c", []byte(strconv.Itoa(i)), 20, time.Hour)).of(t)
		if n != int64(i+1) {
			t.Fatalf("total after %d appends = %d", i+1, n)
		}
	}
	h := must(s.History(ctx, "c")).of(t)
	if len(h) != 20 || string(h[0]) != "5" || string(h[19]) != "24" {
		t.Fatalf("kept %d turns from %s to %s, want 20 from 5 to 24", len(h), h[0], h[len(h)-1])
	}
	if n := must(s.TurnCount(ctx, "c")).of(t); n != 25 {
		t.Fatalf("TurnCount = %d", n)
	}
	for i := 0; i < 3; i++ {
		must(s.AppendTurn(ctx, "all", []byte{byte(i)}, 0, 0)).of(t)
	}
	if h := must(s.History(ctx, "all")).of(t); len(h) != 3 {
		t.Fatalf("keep=0 kept %d", len(h))
	}
	// Odd names work (in Redis the name is a cluster hash tag).
	must(s.AppendTurn(ctx, "}odd{", []byte("x"), 2, time.Hour)).of(t)
	if h := must(s.History(ctx, "}odd{")).of(t); len(h) != 1 {
		t.Fatalf("history of an odd name: %d turns", len(h))
	}
	must(s.Append(ctx, "a{b}", []byte("x"), time.Hour)).of(t)
	if recs, _, err := s.Range(ctx, "a{b}", store.LogRange{}); err != nil || len(recs) != 1 {
		t.Fatalf("log of an odd name: %v %v", recs, err)
	}
	noErr(t, s.DeleteHistory(ctx, "c"))
	if h := must(s.History(ctx, "c")).of(t); len(h) != 0 {
		t.Fatalf("history after delete: %d", len(h))
	}
	if n := must(s.TurnCount(ctx, "c")).of(t); n != 0 {
		t.Fatalf("TurnCount after delete = %d", n)
	}
}

func testHistoryTTL(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	must(s.AppendTurn(ctx, "c", []byte("a"), 20, time.Hour)).of(t)
	// The latest ttl applies to the whole history, older turns included.
	must(s.AppendTurn(ctx, "c", []byte("b"), 20, 150*time.Millisecond)).of(t)
	eventually(t, expiryWait, "history expires", func() bool {
		return len(must(s.History(ctx, "c")).of(t)) == 0
	})
	if n := must(s.TurnCount(ctx, "c")).of(t); n != 0 {
		t.Fatalf("TurnCount after expiry = %d", n)
	}
	if n := must(s.AppendTurn(ctx, "c", []byte("c"), 20, time.Hour)).of(t); n != 1 {
		t.Fatalf("total restarts at 1, got %d", n)
	}
}

func testHistoryConcurrent(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if _, err := s.AppendTurn(ctx, "c", []byte(fmt.Sprint(w, i)), 5, time.Hour); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if n := must(s.TurnCount(ctx, "c")).of(t); n != 80 {
		t.Fatalf("TurnCount = %d, want 80", n)
	}
	if h := must(s.History(ctx, "c")).of(t); len(h) != 5 {
		t.Fatalf("kept %d, want 5", len(h))
	}
}

var timerTests = []test{
	{"DueOrderAndClaimOnce", testTimersDue},
	{"RedeliveredAfterLease", testTimersLease},
	{"RescheduleReplaces", testTimersReschedule},
	{"Cancel", testTimersCancel},
	{"ConcurrentClaimers", testTimersConcurrent},
	{"SurviveRestart", testTimersRestart},
}

func testTimersDue(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	now := time.Now()
	noErr(t, s.Schedule(ctx, "t2", now.Add(-2*time.Second), []byte("p2")))
	noErr(t, s.Schedule(ctx, "t3", now.Add(-1*time.Second), []byte("p3")))
	noErr(t, s.Schedule(ctx, "t1", now.Add(-3*time.Second), []byte("p1")))
	noErr(t, s.Schedule(ctx, "later", now.Add(time.Hour), nil))
	got := must(s.ClaimDue(ctx, now, 2, time.Minute)).of(t)
	if len(got) != 2 || got[0].ID != "t1" || got[1].ID != "t2" {
		t.Fatalf("claimed %v, want t1 t2", ids(got))
	}
	got = append(got, must(s.ClaimDue(ctx, now, 10, time.Minute)).of(t)...)
	if len(got) != 3 || got[2].ID != "t3" {
		t.Fatalf("claimed %v, want t1 t2 t3", ids(got))
	}
	for i, tm := range got {
		if string(tm.Payload) != fmt.Sprintf("p%d", i+1) || tm.Attempts != 1 || tm.Claim == "" {
			t.Fatalf("timer %+v", tm)
		}
		if want := now.Add(time.Duration(i-3) * time.Second).UnixMilli(); tm.Due.UnixMilli() != want {
			t.Fatalf("timer %s due %v, want %v", tm.ID, tm.Due.UnixMilli(), want)
		}
	}
	if again := must(s.ClaimDue(ctx, now, 10, time.Minute)).of(t); len(again) != 0 {
		t.Fatalf("claimed twice: %v", ids(again))
	}
	for _, tm := range got {
		noErr(t, s.Done(ctx, tm.ID, tm.Claim))
	}
	// Done timers never come back, even after the lease would have ended.
	if again := must(s.ClaimDue(ctx, now.Add(2*time.Minute), 10, time.Minute)).of(t); len(again) != 0 {
		t.Fatalf("done timers claimed again: %v", ids(again))
	}
	noErr(t, s.Done(ctx, "t1", got[0].Claim)) // already done: nil
	if late := must(s.ClaimDue(ctx, now.Add(2*time.Hour), 10, time.Minute)).of(t); len(late) != 1 || late[0].ID != "later" {
		t.Fatalf("future timer: %v", ids(late))
	}
}

func ids(ts []store.Timer) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

func testTimersLease(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	now := time.Now()
	noErr(t, s.Schedule(ctx, "sla", now, []byte("x")))
	first := must(s.ClaimDue(ctx, now, 10, time.Minute)).of(t)
	if len(first) != 1 {
		t.Fatalf("claimed %v", ids(first))
	}
	if mid := must(s.ClaimDue(ctx, now.Add(30*time.Second), 10, time.Minute)).of(t); len(mid) != 0 {
		t.Fatalf("claimed during the lease: %v", ids(mid))
	}
	second := must(s.ClaimDue(ctx, now.Add(61*time.Second), 10, time.Minute)).of(t)
	if len(second) != 1 || second[0].Attempts != 2 || second[0].Claim == first[0].Claim {
		t.Fatalf("redelivery after lease: %+v", second)
	}
	if second[0].Due.UnixMilli() != now.UnixMilli() {
		t.Fatalf("redelivered timer lost its due time: %v", second[0].Due)
	}
	wantErr(t, s.Done(ctx, "sla", first[0].Claim), store.ErrConflict)
	noErr(t, s.Done(ctx, "sla", second[0].Claim))
	// A real-time lease expiry, to check the store compares times itself.
	noErr(t, s.Schedule(ctx, "rt", time.Now(), nil))
	c := must(s.ClaimDue(ctx, time.Now(), 1, 150*time.Millisecond)).of(t)
	if len(c) != 1 {
		t.Fatal("claim rt")
	}
	eventually(t, expiryWait, "claim lease ends", func() bool {
		return len(must(s.ClaimDue(ctx, time.Now(), 1, time.Minute)).of(t)) == 1
	})
}

func testTimersReschedule(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	now := time.Now()
	noErr(t, s.Schedule(ctx, "quiet:c1", now.Add(time.Second), []byte("old")))
	noErr(t, s.Schedule(ctx, "quiet:c1", now.Add(3*time.Second), []byte("new")))
	if got := must(s.ClaimDue(ctx, now.Add(2*time.Second), 10, time.Minute)).of(t); len(got) != 0 {
		t.Fatalf("the replaced due time still fires: %v", ids(got))
	}
	got := must(s.ClaimDue(ctx, now.Add(3*time.Second), 10, time.Minute)).of(t)
	if len(got) != 1 || string(got[0].Payload) != "new" {
		t.Fatalf("claimed %+v", got)
	}
	// Rescheduled while claimed: the old claim is stale, the new schedule stands.
	noErr(t, s.Schedule(ctx, "quiet:c1", now.Add(5*time.Second), []byte("newer")))
	wantErr(t, s.Done(ctx, "quiet:c1", got[0].Claim), store.ErrConflict)
	got = must(s.ClaimDue(ctx, now.Add(5*time.Second), 10, time.Minute)).of(t)
	if len(got) != 1 || string(got[0].Payload) != "newer" || got[0].Attempts != 1 {
		t.Fatalf("claimed %+v", got)
	}
}

func testTimersCancel(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	now := time.Now()
	noErr(t, s.Schedule(ctx, "a", now, nil))
	noErr(t, s.Schedule(ctx, "b", now, nil))
	noErr(t, s.Cancel(ctx, "a"))
	noErr(t, s.Cancel(ctx, "missing"))
	got := must(s.ClaimDue(ctx, now, 10, time.Minute)).of(t)
	if len(got) != 1 || got[0].ID != "b" {
		t.Fatalf("claimed %v", ids(got))
	}
	noErr(t, s.Cancel(ctx, "b")) // claimed: cancel still removes it
	noErr(t, s.Done(ctx, "b", got[0].Claim))
	if again := must(s.ClaimDue(ctx, now.Add(time.Hour), 10, time.Minute)).of(t); len(again) != 0 {
		t.Fatalf("cancelled timers fired: %v", ids(again))
	}
}

func testTimersConcurrent(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	now := time.Now()
	const n = 100
	for i := 0; i < n; i++ {
		noErr(t, s.Schedule(ctx, fmt.Sprintf("t%03d", i), now.Add(-time.Duration(i)*time.Millisecond), nil))
	}
	var mu sync.Mutex
	claims := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.ClaimDue(ctx, now, 7, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, tm := range got {
					claims[tm.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claims) != n {
		t.Fatalf("%d timers claimed, want %d", len(claims), n)
	}
	for id, c := range claims {
		if c != 1 {
			t.Fatalf("timer %s claimed %d times", id, c)
		}
	}
}

func testTimersRestart(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	now := time.Now()
	noErr(t, s.Schedule(ctx, "a", now, []byte("x")))
	noErr(t, s.Schedule(ctx, "b", now, []byte("y")))
	c := must(s.ClaimDue(ctx, now, 1, time.Minute)).of(t)
	s = e.restart(t)
	rest := must(s.ClaimDue(ctx, now, 10, time.Minute)).of(t)
	if len(rest) != 1 || rest[0].ID == c[0].ID {
		t.Fatalf("after restart claimed %v (had %v in flight)", ids(rest), ids(c))
	}
	again := must(s.ClaimDue(ctx, now.Add(2*time.Minute), 10, time.Minute)).of(t)
	if len(again) != 2 {
		t.Fatalf("after the lease both are due again, got %v", ids(again))
	}
}

var deadTests = []test{
	{"PutListGetDelete", testDead},
}

func testDead(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 5; i++ {
		d := store.DeadLetter{
			ID: fmt.Sprintf("m%d", i),
			Entry: store.Entry{
				ID: fmt.Sprintf("m%d", i), Partition: 3, Key: "conv", Payload: []byte{0, 1, byte(i)},
				Deliveries: 5, EnqueuedAt: base,
			},
			Error: "crm: permanent: 400", Attempts: 5, At: base.Add(time.Duration(4-i) * time.Minute),
		}
		noErr(t, s.PutDead(ctx, d))
	}
	// Re-putting replaces (same id), and moves it in the order.
	noErr(t, s.PutDead(ctx, store.DeadLetter{ID: "m4", Entry: store.Entry{ID: "m4", Key: "conv", Payload: []byte("again")}, Error: "e2", Attempts: 6, At: base.Add(10 * time.Minute)}))
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		items, next, err := s.ListDead(ctx, cursor, 2)
		noErr(t, err)
		for _, d := range items {
			got = append(got, d.ID)
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("ListDead does not end")
		}
		cursor = next
	}
	if fmt.Sprint(got) != "[m3 m2 m1 m0 m4]" {
		t.Fatalf("dead letters in order %v, want oldest first [m3 m2 m1 m0 m4]", got)
	}
	d, err := s.GetDead(ctx, "m2")
	noErr(t, err)
	if d.Entry.Key != "conv" || !bytes.Equal(d.Entry.Payload, []byte{0, 1, 2}) || d.Entry.Partition != 3 ||
		d.Entry.Deliveries != 5 || !d.Entry.EnqueuedAt.Equal(base) || d.Error != "crm: permanent: 400" ||
		d.Attempts != 5 || !d.At.Equal(base.Add(2*time.Minute)) {
		t.Fatalf("dead letter came back as %+v", d)
	}
	d, _ = s.GetDead(ctx, "m4")
	if string(d.Entry.Payload) != "again" || d.Attempts != 6 {
		t.Fatalf("replaced dead letter: %+v", d)
	}
	noErr(t, s.DeleteDead(ctx, "m2"))
	noErr(t, s.DeleteDead(ctx, "m2"))
	_, err = s.GetDead(ctx, "m2")
	wantErr(t, err, store.ErrNotFound)
	items, _, err := s.ListDead(ctx, "", 10)
	noErr(t, err)
	if len(items) != 4 {
		t.Fatalf("%d dead letters after delete", len(items))
	}
}

var logTests = []test{
	{"AppendRange", testLogs},
	{"TimeBounds", testLogBounds},
	{"Retention", testLogRetention},
	{"AppendEach", testLogAppendEach},
}

func testLogs(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	recs, next, err := s.Range(ctx, "audit", store.LogRange{})
	noErr(t, err)
	if len(recs) != 0 || next != "" {
		t.Fatalf("empty log: %v %q", recs, next)
	}
	var appended []string
	for i := 0; i < 7; i++ {
		appended = append(appended, must(s.Append(ctx, "audit", []byte(strconv.Itoa(i)), time.Hour)).of(t))
	}
	must(s.Append(ctx, "other", []byte("x"), 0)).of(t)
	var got []store.Record
	after := ""
	for pages := 0; ; pages++ {
		recs, next, err := s.Range(ctx, "audit", store.LogRange{After: after, Limit: 3})
		noErr(t, err)
		got = append(got, recs...)
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("Range does not end")
		}
		after = next
	}
	if len(got) != 7 {
		t.Fatalf("ranged %d records, want 7", len(got))
	}
	for i, r := range got {
		if r.ID != appended[i] || string(r.Data) != strconv.Itoa(i) {
			t.Fatalf("record %d: %+v (id %s)", i, r, appended[i])
		}
		if r.At.Before(time.Now().Add(-time.Minute)) || r.At.After(time.Now().Add(time.Minute)) {
			t.Fatalf("record time %v", r.At)
		}
		if i > 0 && r.At.Before(got[i-1].At) {
			t.Fatal("records not in time order")
		}
	}
}

func testLogBounds(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	for i := 0; i < 4; i++ {
		must(s.Append(ctx, "raw", []byte{byte(i)}, 0)).of(t)
		time.Sleep(3 * time.Millisecond) // spread records over milliseconds; not a correctness wait
	}
	all, _, err := s.Range(ctx, "raw", store.LogRange{})
	noErr(t, err)
	from, to := all[1].At, all[2].At
	sel, _, err := s.Range(ctx, "raw", store.LogRange{From: from, To: to})
	noErr(t, err)
	var want []string
	for _, r := range all {
		if !r.At.Before(from) && !r.At.After(to) {
			want = append(want, r.ID)
		}
	}
	var have []string
	for _, r := range sel {
		have = append(have, r.ID)
	}
	if fmt.Sprint(have) != fmt.Sprint(want) || len(have) < 2 {
		t.Fatalf("From/To selected %v, want %v", have, want)
	}
}

func testLogRetention(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	first := must(s.Append(ctx, "raw", []byte("old"), 200*time.Millisecond)).of(t)
	eventually(t, expiryWait, "records past retention are dropped", func() bool {
		must(s.Append(ctx, "raw", []byte("new"), 200*time.Millisecond)).of(t)
		recs, _, err := s.Range(ctx, "raw", store.LogRange{Limit: 1})
		noErr(t, err)
		return len(recs) == 1 && recs[0].ID != first
	})
	recs, _, err := s.Range(ctx, "raw", store.LogRange{Limit: 1000})
	noErr(t, err)
	if oldest := recs[0].At; time.Since(oldest) > 5*time.Second {
		t.Fatalf("oldest record is %v old", time.Since(oldest))
	}
}

func testLogAppendEach(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	must(s.Append(ctx, "audit:c1", []byte("before"), time.Hour)).of(t)
	ids := must(s.AppendEach(ctx, []string{"audit", "audit:c1", "audit:{c2}"}, []byte("rec"), time.Hour)).of(t)
	if len(ids) != 3 {
		t.Fatalf("%d ids for 3 logs", len(ids))
	}
	for i, log := range []string{"audit", "audit:c1", "audit:{c2}"} {
		recs, _, err := s.Range(ctx, log, store.LogRange{})
		noErr(t, err)
		last := recs[len(recs)-1]
		if last.ID != ids[i] || string(last.Data) != "rec" {
			t.Fatalf("log %s: last record %s %q, want %s %q", log, last.ID, last.Data, ids[i], "rec")
		}
	}
	// Appended after an Append, in the same log: after it in time order.
	recs, _, err := s.Range(ctx, "audit:c1", store.LogRange{})
	noErr(t, err)
	if len(recs) != 2 || string(recs[0].Data) != "before" {
		t.Fatalf("audit:c1 holds %d records, first %q", len(recs), recs[0].Data)
	}
	if ids, err := s.AppendEach(ctx, nil, []byte("x"), 0); err != nil || len(ids) != 0 {
		t.Fatalf("no logs: %v, %v", ids, err)
	}
	_, err = s.AppendEach(ctx, []string{"audit", ""}, []byte("x"), 0)
	wantErr(t, err, store.ErrInvalid)
	recs, _, err = s.Range(ctx, "audit", store.LogRange{})
	noErr(t, err)
	if len(recs) != 1 {
		t.Fatalf("a refused AppendEach wrote: audit holds %d records", len(recs))
	}
}

var lifecycleTests = []test{
	{"PingAndClose", testLifecycle},
}

func testLifecycle(t *testing.T, e *env) {
	s, ctx := e.store(), ctxT(t)
	noErr(t, s.Ping(ctx))
	must(s.Enqueue(ctx, "k", []byte("x"))).of(t)
	noErr(t, s.Close())
	e.cur = nil
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping after Close: %v, want ErrUnavailable", err)
	}
	if _, err := s.Enqueue(ctx, "k", []byte("y")); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Enqueue after Close: %v, want ErrUnavailable", err)
	}
	// The data outlives the instance.
	s2 := e.store()
	if d := must(s2.Depth(ctx)).of(t); d != 1 {
		t.Fatalf("depth after reopen = %d, want 1", d)
	}
}
