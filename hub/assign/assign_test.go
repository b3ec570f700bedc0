package assign_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/rules"
)

func assigned(t *testing.T, a *assign.Assigner) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, s := range must[[]assign.AgentState](t)(a.Agents(context.Background())) {
		out[s.ID] = s.Assigned
	}
	return out
}

func spread(counts map[string]int64, agents ...string) (lo, hi int64) {
	lo, hi = 1<<62, -1
	for _, id := range agents {
		lo, hi = min(lo, counts[id]), max(hi, counts[id])
	}
	return lo, hi
}

// TestRoundRobinFair makes 10,000 assignments to 5 agents from 8
// goroutines: the counts end within 1 of each other. Then agents go
// offline in the middle of a run: from the moment SetStatus returns they
// receive nothing, and the others still share evenly.
func TestRoundRobinFair(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		a := newAssigner(t, st, assign.Options{})
		var seq atomic.Int64
		run := func(n int, workers int) {
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for seq.Add(1) <= int64(n) {
						conv := fmt.Sprintf("c%d", seq.Load())
						res, err := a.Submit(ctx, assign.Request{Conv: conv, Team: "rr5"})
						if err == nil && (res.Agent == "" || res.Queued) {
							err = fmt.Errorf("%s not assigned: %+v", conv, res)
						}
						if err == nil {
							err = a.Close(ctx, conv, "done")
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		}
		all := []string{"a1", "a2", "a3", "a4", "a5"}
		run(10000, 8)
		counts := assigned(t, a)
		if lo, hi := spread(counts, all...); hi-lo > 1 || lo+hi < 3999 {
			t.Fatalf("10,000 round-robin assignments: %v (spread %d)", counts, hi-lo)
		}

		// a2 and a4 go offline while workers keep assigning.
		seq.Store(0)
		done := make(chan struct{})
		var before map[string]int64
		go func() {
			defer close(done)
			run(3000, 4)
		}()
		eventually(t, 10*time.Second, "the second run to start", func() bool { return seq.Load() > 300 })
		for _, id := range []string{"a2", "a4"} {
			if err := a.SetStatus(ctx, id, assign.Offline); err != nil {
				t.Fatal(err)
			}
		}
		before = assigned(t, a)
		<-done
		after := assigned(t, a)
		for _, id := range []string{"a2", "a4"} {
			if after[id] != before[id] {
				t.Errorf("%s got %d conversations while offline", id, after[id]-before[id])
			}
		}
		phase := map[string]int64{}
		for _, id := range []string{"a1", "a3", "a5"} {
			phase[id] = after[id] - before[id]
		}
		if lo, hi := spread(phase, "a1", "a3", "a5"); hi-lo > 1 || lo == 0 {
			t.Errorf("while a2 and a4 were offline: %v", phase)
		}
		st1, _ := a.Agent(ctx, "a2")
		if st1.Status != assign.Offline || st1.Available {
			t.Errorf("a2: %+v", st1)
		}
	})
}

// TestCapacityQueue: a capacity team never goes above capacity; when all
// are full, conversations wait in priority-then-age order, and one is
// assigned the moment a slot frees.
func TestCapacityQueue(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		clk := newClock(time.Date(2026, 3, 11, 10, 0, 0, 0, hcm))
		a := newAssigner(t, st, assign.Options{Now: clk.Now})
		// c1, c2: 2 each, c3: 3 → 7 slots.
		for i := 0; i < 7; i++ {
			res := must[*assign.Assignment](t)(a.Submit(ctx, assign.Request{Conv: fmt.Sprintf("x%d", i), Team: "cap"}))
			if res.Agent == "" {
				t.Fatalf("x%d queued with free slots: %+v", i, res)
			}
			clk.Advance(time.Second)
		}
		waiting := []struct{ conv, prio string }{{"w-normal-old", "normal"}, {"w-low", "low"}, {"w-high", "high"}, {"w-normal-new", "normal"}, {"w-urgent", "urgent"}}
		for _, w := range waiting {
			res := must[*assign.Assignment](t)(a.Submit(ctx, assign.Request{Conv: w.conv, Team: "cap", Priority: w.prio, Since: clk.Now()}))
			if !res.Queued || res.Agent != "" {
				t.Fatalf("%s: want queued, got %+v", w.conv, res)
			}
			clk.Advance(time.Second)
		}
		q := must[[]assign.Waiting](t)(a.Queue(ctx, "cap"))
		var order []string
		for _, w := range q {
			order = append(order, w.Conv)
		}
		want := []string{"w-urgent", "w-high", "w-normal-old", "w-normal-new", "w-low"}
		if fmt.Sprint(order) != fmt.Sprint(want) {
			t.Fatalf("queue order %v, want %v", order, want)
		}
		for _, s := range must[[]assign.AgentState](t)(a.Agents(ctx)) {
			if s.Capacity > 0 && s.Load > s.Capacity {
				t.Fatalf("%s above capacity: %+v", s.ID, s)
			}
		}
		// Free one of c3's slots: the urgent one takes it at once.
		c3 := must[assign.AgentState](t)(a.Agent(ctx, "c3"))
		if c3.Load != 3 || c3.Capacity != 3 {
			t.Fatalf("c3: %+v", c3)
		}
		if err := a.Close(ctx, c3.Open[0], "done"); err != nil {
			t.Fatal(err)
		}
		r := must[*assign.Record](t)(a.Record(ctx, "w-urgent"))
		if r.State != assign.RecAssigned || r.Assignee != "c3" {
			t.Fatalf("w-urgent after a slot freed: %+v", r)
		}
		// An agent coming online, or more capacity, drains too.
		if err := a.SetCapacity(ctx, "c1", 4); err != nil {
			t.Fatal(err)
		}
		for _, conv := range []string{"w-high", "w-normal-old"} {
			if r := must[*assign.Record](t)(a.Record(ctx, conv)); r.Assignee != "c1" {
				t.Fatalf("%s after c1's capacity went to 4: %+v", conv, r)
			}
		}
		if n := len(must[[]assign.Waiting](t)(a.Queue(ctx, "cap"))); n != 2 {
			t.Fatalf("%d still waiting, want 2", n)
		}
		// Back to the rules' capacity: c1 keeps its 4 but gets no more.
		if err := a.SetCapacity(ctx, "c1", -1); err != nil {
			t.Fatal(err)
		}
		c1 := must[assign.AgentState](t)(a.Agent(ctx, "c1"))
		if c1.Capacity != 2 || c1.Load != 4 || c1.CapacityOverride != nil {
			t.Fatalf("c1: %+v", c1)
		}
		if err := a.Close(ctx, c1.Open[0], "done"); err != nil {
			t.Fatal(err)
		}
		if r := must[*assign.Record](t)(a.Record(ctx, "w-normal-new")); r.State != assign.RecWaiting {
			t.Fatalf("c1 took a conversation at 3 open with capacity 2: %+v", r)
		}
		// Manual assignment respects capacity too.
		if _, err := a.Assign(ctx, "w-low", "c2"); !errors.Is(err, assign.ErrAtCapacity) {
			t.Fatalf("manual assignment to a full agent: %v", err)
		}
	})
}

// TestStrategies: least_loaded, capacity share, sticky owner, skills.
func TestStrategies(t *testing.T) {
	ctx := context.Background()
	st := openEmbedded(t)
	a := newAssigner(t, st, assign.Options{})
	submit := func(req assign.Request) *assign.Assignment {
		t.Helper()
		return must[*assign.Assignment](t)(a.Submit(ctx, req))
	}

	t.Run("least_loaded", func(t *testing.T) {
		got := []string{}
		for i := 0; i < 4; i++ {
			got = append(got, submit(assign.Request{Conv: fmt.Sprintf("ll%d", i), Team: "least"}).Agent)
		}
		if fmt.Sprint(got) != "[l1 l2 l1 l2]" {
			t.Fatalf("least_loaded: %v", got)
		}
		must[any](t)(nil, a.Close(ctx, "ll0", ""))
		must[any](t)(nil, a.Close(ctx, "ll2", "")) // l1 now has 0, l2 has 2
		for i := 4; i < 6; i++ {
			if ag := submit(assign.Request{Conv: fmt.Sprintf("ll%d", i), Team: "least"}).Agent; ag != "l1" {
				t.Fatalf("ll%d went to %s, want the least loaded l1", i, ag)
			}
		}
	})

	t.Run("capacity share", func(t *testing.T) {
		// c3 (capacity 3) takes the third of the first 3 and then... each
		// goes to the lowest share of capacity used.
		var got []string
		for i := 0; i < 7; i++ {
			got = append(got, submit(assign.Request{Conv: fmt.Sprintf("cs%d", i), Team: "cap"}).Agent)
		}
		n := map[string]int{}
		for _, g := range got {
			n[g]++
		}
		if n["c1"] != 2 || n["c2"] != 2 || n["c3"] != 3 {
			t.Fatalf("capacity: %v", got)
		}
		for i := 0; i < 7; i++ {
			must[any](t)(nil, a.Close(ctx, fmt.Sprintf("cs%d", i), ""))
		}
	})

	t.Run("sticky owner", func(t *testing.T) {
		for _, tc := range []struct {
			name, owner string
			prep        func()
			want        string
		}{
			{"owner available", "a4", nil, "a4"},
			{"owner by crm id", "crm-77", nil, "s1"}, // s1 is in no rr5 slot but may take it
			{"owner offline goes to the strategy", "a3", func() { must[any](t)(nil, a.SetStatus(ctx, "a3", assign.Offline)) }, "!a3"},
			{"unknown owner", "nobody", nil, "!"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.prep != nil {
					tc.prep()
				}
				res := submit(assign.Request{Conv: "own-" + tc.name, Team: "rr5", Owner: tc.owner})
				switch {
				case res.Queued:
					t.Fatalf("queued behind an absent owner: %+v", res)
				case tc.want[0] == '!' && res.Agent == tc.want[1:]:
					t.Fatalf("got %s", res.Agent)
				case tc.want[0] != '!' && (res.Agent != tc.want || res.Reason != "owner"):
					t.Fatalf("got %+v, want %s by owner", res, tc.want)
				}
			})
		}
		must[any](t)(nil, a.SetStatus(ctx, "a3", assign.Online))
	})

	t.Run("skills", func(t *testing.T) {
		complaint := &rules.Input{Lead: rules.Lead{Intent: "complaint"}}
		for i := 0; i < 3; i++ {
			if ag := submit(assign.Request{Conv: fmt.Sprintf("cmp%d", i), Team: "skill", Input: complaint}).Agent; ag != "k2" {
				t.Fatalf("complaint went to %s", ag)
			}
		}
		must[any](t)(nil, a.SetStatus(ctx, "k2", assign.Away))
		if res := submit(assign.Request{Conv: "cmp-wait", Team: "skill", Input: complaint}); !res.Queued {
			t.Fatalf("a complaint with no trained agent online: %+v", res)
		}
		// A question is not held up behind the waiting complaint.
		if res := submit(assign.Request{Conv: "question", Team: "skill", Input: &rules.Input{Lead: rules.Lead{Intent: "inquiry"}}}); res.Agent != "k1" {
			t.Fatalf("question: %+v", res)
		}
		// k1 is free, yet the waiting complaint stays for a trained agent.
		must[any](t)(nil, a.Close(ctx, "question", ""))
		if r := must[*assign.Record](t)(a.Record(ctx, "cmp-wait")); r.State != assign.RecWaiting {
			t.Fatalf("cmp-wait went to an untrained agent: %+v", r)
		}
		must[any](t)(nil, a.SetStatus(ctx, "k2", assign.Online))
		if r := must[*assign.Record](t)(a.Record(ctx, "cmp-wait")); r.State != assign.RecAssigned || r.Assignee != "k2" {
			t.Fatalf("cmp-wait after k2 came back: %+v", r)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			err  error
			call func() error
		}{
			{"unknown team", assign.ErrUnknownTeam, func() error { _, err := a.Submit(ctx, assign.Request{Conv: "e1", Team: "nope"}); return err }},
			{"no team", assign.ErrNoTeam, func() error { _, err := a.Submit(ctx, assign.Request{Conv: "e1"}); return err }},
			{"unknown agent", assign.ErrUnknownAgent, func() error { return a.SetStatus(ctx, "zed", assign.Online) }},
			{"bad status", assign.ErrInvalid, func() error { return a.SetStatus(ctx, "a1", "busy") }},
			{"unknown conversation", assign.ErrNotFound, func() error { return a.Close(ctx, "never-seen", "") }},
			{"reassign nobody else", assign.ErrNoAgent, func() error {
				submit(assign.Request{Conv: "solo", Team: "esc"})
				_, err := a.Reassign(ctx, "solo", "")
				return err
			}},
		} {
			if err := tc.call(); !errors.Is(err, tc.err) {
				t.Errorf("%s: got %v, want %v", tc.name, err, tc.err)
			}
		}
	})

	t.Run("idempotent and reassign", func(t *testing.T) {
		r1 := submit(assign.Request{Conv: "idem", Team: "least"})
		r2 := submit(assign.Request{Conv: "idem", Team: "least"})
		if r1.Agent != r2.Agent || r2.Reason != "existing" {
			t.Fatalf("second submit: %+v then %+v", r1, r2)
		}
		before := must[assign.AgentState](t)(a.Agent(ctx, r1.Agent))
		other := "l1"
		if r1.Agent == "l1" {
			other = "l2"
		}
		r3 := must[*assign.Assignment](t)(a.Reassign(ctx, "idem", ""))
		if r3.Agent != other {
			t.Fatalf("reassign: %+v", r3)
		}
		after := must[assign.AgentState](t)(a.Agent(ctx, r1.Agent))
		if after.Load != before.Load-1 {
			t.Fatalf("the previous assignee kept the slot: %d → %d", before.Load, after.Load)
		}
	})
}
