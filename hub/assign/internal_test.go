package assign

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store/embedded"
	"github.com/switchboard-hub/switchboard/rules"
)

func internalAssigner(t *testing.T, now func() time.Time) *Assigner {
	t.Helper()
	st, err := embedded.Open(embedded.Options{Path: filepath.Join(t.TempDir(), "sb.db"), Partitions: 2, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	eng, err := rules.NewEngine("testdata/rules")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Store: st, Rules: eng.Current, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func putJSON(t *testing.T, a *Assigner, key string, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if _, err := a.o.Store.Put(context.Background(), NS, key, b, 0); err != nil {
		t.Fatal(err)
	}
}

// TestCrashLeftovers: what a process that died half way through leaves,
// and how it is repaired.
func TestCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 11, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a := internalAssigner(t, clock)

	// A close that died after clearing the record, before freeing the
	// slot; a slot taken a moment ago by an assignment still in flight;
	// and a slot the record accounts for.
	old := now.Add(-2 * reconcileGrace)
	putJSON(t, a, agentPrefix+"c1", agentRec{Open: map[string]slot{
		"closed-conv":   {Token: "t1", At: old},
		"in-flight":     {Token: "t2", At: now.Add(-time.Second)},
		"assigned-conv": {Token: "t3", At: old},
	}})
	putJSON(t, a, convPrefix+"closed-conv", Record{Conv: "closed-conv", State: RecClosed})
	putJSON(t, a, convPrefix+"assigned-conv", Record{Conv: "assigned-conv", State: RecAssigned, Team: "cap", Assignee: "c1", Token: "t3"})
	fixed, err := a.Reconcile(ctx)
	if err != nil || fixed != 1 {
		t.Fatalf("reconcile: fixed %d, %v", fixed, err)
	}
	r, _ := a.agentRec(ctx, "c1")
	if _, ok := r.Open["closed-conv"]; ok || len(r.Open) != 2 {
		t.Fatalf("after reconcile c1 holds %v", r.Open)
	}

	// An assignment that died after taking c2's slot, before committing:
	// its retry finishes it with c2 rather than taking a second slot.
	putJSON(t, a, agentPrefix+"c2", agentRec{Open: map[string]slot{"half": {Token: "t9", At: now}}})
	putJSON(t, a, convPrefix+"half", Record{Conv: "half", State: RecWaiting, Team: "cap", Pending: "c2", PendingToken: "t9", HandedOff: now})
	res, err := a.Submit(ctx, Request{Conv: "half", Team: "cap"})
	if err != nil || res.Agent != "c2" || res.Reason != "recovered" {
		t.Fatalf("retry: %+v %v", res, err)
	}
	recs, _ := a.agentRecs(ctx)
	n := 0
	for _, r := range recs {
		if _, ok := r.Open["half"]; ok {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the conversation holds %d slots", n)
	}

	// Nobody retries a stalled intent: the reconciler completes it.
	putJSON(t, a, agentPrefix+"c3", agentRec{Open: map[string]slot{"stalled": {Token: "t7", At: old}}})
	putJSON(t, a, convPrefix+"stalled", Record{Conv: "stalled", State: RecWaiting, Team: "cap", Pending: "c3", PendingToken: "t7", UpdatedAt: old})
	if _, err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, _ := a.getRecord(ctx, "stalled"); rec.State != RecAssigned || rec.Assignee != "c3" || rec.Pending != "" {
		t.Fatalf("stalled intent: %+v", rec)
	}
}

// TestStaleRemovalKeepsNewerSlot: a late removal by an older assignment of
// the same conversation does not free the newer assignment's slot.
func TestStaleRemovalKeepsNewerSlot(t *testing.T) {
	ctx := context.Background()
	a := internalAssigner(t, time.Now)
	capOf := func(*agentRec) int { return 2 }
	if ok, _, err := a.addSlot(ctx, "c1", "x", "old", capOf, true); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, _, err := a.addSlot(ctx, "c1", "x", "new", capOf, true); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if removed, _ := a.removeSlot(ctx, "c1", "x", "old"); removed {
		t.Fatal("the old token freed the new assignment's slot")
	}
	r, _ := a.agentRec(ctx, "c1")
	if len(r.Open) != 1 || r.Open["x"].Token != "new" || r.Assigned != 1 {
		t.Fatalf("%+v", r)
	}
	// Full, and offline: no slot either way.
	_, _, _ = a.addSlot(ctx, "c1", "y", "y1", capOf, true)
	if ok, _, _ := a.addSlot(ctx, "c1", "z", "z1", capOf, true); ok {
		t.Fatal("a third slot with capacity 2")
	}
	if err := a.SetStatus(ctx, "c2", Offline); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := a.addSlot(ctx, "c2", "z", "z1", capOf, true); ok {
		t.Fatal("a slot for an offline agent")
	}
	if ok, _, _ := a.addSlot(ctx, "c2", "z", "z1", capOf, false); !ok {
		t.Fatal("a manual assignment to an offline agent is the admin's call")
	}
}
