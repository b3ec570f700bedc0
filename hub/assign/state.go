package assign

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/rules"
)

// NS is the KV namespace of the assigner's shared state. One namespace
// keeps it in one Redis Cluster slot.
const NS = "assign"

// Keys in NS.
const (
	agentPrefix = "agent/" // agent/<id> → agentRec
	teamPrefix  = "team/"  // team/<name> → teamRec
	convPrefix  = "conv/"  // conv/<id> → Record
	queuePrefix = "q/"     // q/<team>/<rank>/<unix ms>/<conv> → Waiting
)

// finishedTTL is how long records of released and closed conversations
// are kept (for the admin API and reports).
const finishedTTL = 30 * 24 * time.Hour

// agentRec is an agent's shared run-time state. Open maps each open
// conversation to the token of the assignment that holds the slot, so a
// late removal by an older assignment never frees a newer one's slot.
type agentRec struct {
	Status       Status          `json:"status,omitempty"`
	StatusSince  time.Time       `json:"status_since,omitzero"`
	Open         map[string]slot `json:"open,omitempty"`
	CapOverride  *int            `json:"cap_override,omitempty"`
	LastAssigned time.Time       `json:"last_assigned,omitzero"`
	LastConv     string          `json:"last_conv,omitempty"`
	Assigned     int64           `json:"assigned"`
}

type slot struct {
	Token string    `json:"t"`
	At    time.Time `json:"at"`
}

type teamRec struct {
	Cursor string `json:"cursor,omitempty"` // round robin: the last agent given a conversation
}

// cas retries f on a versioned key until its compare-and-swap wins. f gets
// the current value (nil when missing) and returns the new value, or nil
// to leave the key alone (then cas returns nil, false).
func (a *Assigner) cas(ctx context.Context, key string, ttl func(val []byte) time.Duration, f func(cur []byte) ([]byte, error)) (written []byte, err error) {
	for attempt := 0; attempt < 200; attempt++ {
		cur, ver, err := a.o.Store.Get(ctx, NS, key)
		if errors.Is(err, store.ErrNotFound) {
			cur, ver = nil, 0
		} else if err != nil {
			return nil, fmt.Errorf("read %s: %w", key, err)
		}
		next, err := f(cur)
		if err != nil || next == nil {
			return nil, err
		}
		var d time.Duration
		if ttl != nil {
			d = ttl(next)
		}
		_, err = a.o.Store.CompareAndSwap(ctx, NS, key, ver, next, d)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", key, err)
		}
		return next, nil
	}
	return nil, fmt.Errorf("write %s: too many concurrent updates", key)
}

// updateAgent applies f to an agent's record with compare-and-swap. f
// returns false to leave it unchanged.
func (a *Assigner) updateAgent(ctx context.Context, id string, f func(r *agentRec) (bool, error)) (*agentRec, error) {
	var out *agentRec
	_, err := a.cas(ctx, agentPrefix+id, nil, func(cur []byte) ([]byte, error) {
		r := &agentRec{}
		if cur != nil {
			if err := json.Unmarshal(cur, r); err != nil {
				return nil, fmt.Errorf("agent %s: %w", id, err)
			}
		}
		ok, err := f(r)
		out = r
		if err != nil || !ok {
			return nil, err
		}
		return json.Marshal(r)
	})
	return out, err
}

// addSlot gives conv a slot of agent under token, unless that would take
// the agent above capFor(rec) (0: no limit). This compare-and-swap is the
// capacity guarantee: whatever the locks did, no agent goes above capacity.
//
// With needOnline the agent must also be online at that moment, so that
// an agent who went offline gets nothing from a decision made just before.
func (a *Assigner) addSlot(ctx context.Context, agent, conv, token string, capFor func(*agentRec) int, needOnline bool) (bool, *agentRec, error) {
	added := false
	r, err := a.updateAgent(ctx, agent, func(r *agentRec) (bool, error) {
		added = false
		if s, ok := r.Open[conv]; ok {
			if s.Token == token {
				added = true
				return false, nil // already ours: a retry
			}
			// An older assignment of the same conversation: take over its
			// slot without counting twice.
			r.Open[conv] = slot{Token: token, At: a.now()}
			added = true
			return true, nil
		}
		if needOnline && statusOf(r, a.o.DefaultStatus) != Online {
			return false, nil
		}
		if c := capFor(r); c > 0 && len(r.Open) >= c {
			return false, nil
		}
		if r.Open == nil {
			r.Open = map[string]slot{}
		}
		r.Open[conv] = slot{Token: token, At: a.now()}
		r.LastAssigned, r.LastConv = a.now(), conv
		r.Assigned++
		added = true
		return true, nil
	})
	return added, r, err
}

// removeSlot frees conv's slot of agent if token still holds it ("" frees
// it whatever holds it).
func (a *Assigner) removeSlot(ctx context.Context, agent, conv, token string) (bool, error) {
	removed := false
	_, err := a.updateAgent(ctx, agent, func(r *agentRec) (bool, error) {
		s, ok := r.Open[conv]
		if !ok || token != "" && s.Token != token {
			return false, nil
		}
		delete(r.Open, conv)
		removed = true
		return true, nil
	})
	return removed, err
}

// agentRecs reads every agent's record.
func (a *Assigner) agentRecs(ctx context.Context) (map[string]*agentRec, error) {
	out := map[string]*agentRec{}
	cursor := ""
	for {
		items, next, err := a.o.Store.List(ctx, NS, agentPrefix, cursor, 500)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		for _, it := range items {
			r := &agentRec{}
			if err := json.Unmarshal(it.Value, r); err != nil {
				return nil, fmt.Errorf("agent %s: %w", it.Key, err)
			}
			out[strings.TrimPrefix(it.Key, agentPrefix)] = r
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

func (a *Assigner) agentRec(ctx context.Context, id string) (*agentRec, error) {
	b, _, err := a.o.Store.Get(ctx, NS, agentPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return &agentRec{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read agent %s: %w", id, err)
	}
	r := &agentRec{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("agent %s: %w", id, err)
	}
	return r, nil
}

// getRecord reads a conversation's record (nil when there is none).
func (a *Assigner) getRecord(ctx context.Context, conv string) (*Record, error) {
	b, _, err := a.o.Store.Get(ctx, NS, convPrefix+conv)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read record %s: %w", conv, err)
	}
	r := &Record{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("record %s: %w", conv, err)
	}
	return r, nil
}

// errKeep makes updateRecord leave the record unchanged.
var errKeep = errors.New("keep")

// updateRecord applies f to a conversation's record (a fresh one when
// missing) with compare-and-swap. f may run more than once; returning
// errKeep leaves the record unchanged and returns it.
func (a *Assigner) updateRecord(ctx context.Context, conv string, f func(r *Record) error) (*Record, error) {
	var out *Record
	_, err := a.cas(ctx, convPrefix+conv, recordTTL, func(cur []byte) ([]byte, error) {
		r := &Record{Conv: conv}
		if cur != nil {
			if err := json.Unmarshal(cur, r); err != nil {
				return nil, fmt.Errorf("record %s: %w", conv, err)
			}
		}
		err := f(r)
		out = r
		if errors.Is(err, errKeep) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		r.UpdatedAt = a.now()
		return json.Marshal(r)
	})
	return out, err
}

func recordTTL(val []byte) time.Duration {
	var r struct {
		State string `json:"state"`
	}
	_ = json.Unmarshal(val, &r)
	if r.State == RecReleased || r.State == RecClosed {
		return finishedTTL
	}
	return 0
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// priorityRank orders queues: urgent first.
func priorityRank(p string) int {
	for i, q := range rules.Priorities {
		if q == p {
			return len(rules.Priorities) - 1 - i
		}
	}
	return len(rules.Priorities) - 1 - 1 // normal
}

func queueKey(team, priority string, since time.Time, conv string) string {
	return fmt.Sprintf("%s%s/%d/%013d/%s", queuePrefix, team, priorityRank(priority), since.UnixMilli(), conv)
}

func statusOf(r *agentRec, def Status) Status {
	if r == nil || r.Status == "" {
		return def
	}
	return r.Status
}
