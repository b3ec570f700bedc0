package assign

import (
	"context"
	"time"
)

// reconcileGrace is how old a slot or an intent must be before the
// reconciler touches it: well past any assignment still in flight.
const reconcileGrace = time.Minute

// Reconcile repairs what a crash in the middle of an assignment or a
// release can leave behind, and returns how many things it fixed:
//   - a slot an agent holds for a conversation whose record does not name
//     that agent under the same token (a release that died before freeing
//     it): the slot is freed;
//   - an intent (Pending) nobody completed: the assignment is completed or
//     given up, as a retry would.
//
// It only ever frees slots the records do not account for, so it can
// lower an agent's load, never raise it above capacity.
func (a *Assigner) Reconcile(ctx context.Context) (int, error) {
	recs, err := a.agentRecs(ctx)
	if err != nil {
		return 0, err
	}
	now := a.now()
	fixed := 0
	for _, agent := range sortedKeys(recs) {
		for _, conv := range sortedKeys(recs[agent].Open) {
			s := recs[agent].Open[conv]
			if now.Sub(s.At) < reconcileGrace {
				continue
			}
			rec, err := a.getRecord(ctx, conv)
			if err != nil {
				return fixed, err
			}
			if rec != nil && rec.Assignee == agent && rec.Token == s.Token {
				continue
			}
			if rec != nil && rec.Pending == agent && rec.PendingToken == s.Token {
				if now.Sub(rec.UpdatedAt) < reconcileGrace {
					continue
				}
				// A stalled intent: finish it the way a retry would.
				req := a.requestFor(ctx, conv, rec)
				if _, err := a.Submit(ctx, req); err != nil {
					a.log.Warn("reconcile: completing an assignment failed", "conv", conv, "err", err)
				}
				fixed++
				continue
			}
			if ok, err := a.removeSlot(ctx, agent, conv, s.Token); err != nil {
				return fixed, err
			} else if ok {
				a.log.Info("reconcile: freed a slot no record accounts for", "agent", agent, "conv", conv)
				fixed++
			}
		}
	}
	return fixed, nil
}
