package zalo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// windowRecord tracks Zalo's free-reply allowance for one user: after the
// user's message the OA may send FreeReplies messages within Window; the
// count starts again with each new user message. Kept in the host KV so
// every replica sees the same count.
type windowRecord struct {
	LastUserAt time.Time `json:"last_user_at,omitzero"` // provider time of the user's last message
	Replies    []reply   `json:"replies,omitempty"`     // OA messages since, ours and the agents'
	// Refused is set when Zalo refused a send as outside the window or
	// out of quota; it holds until the user writes again.
	Refused     string `json:"refused,omitempty"`
	RefusedCode string `json:"refused_code,omitempty"`
}

type reply struct {
	ID       string    `json:"id"` // Zalo message id, or "pending:<key>" while our send is in flight
	At       time.Time `json:"at"`
	Ours     bool      `json:"ours,omitempty"`
	TextHash string    `json:"text_hash,omitempty"` // in-flight sends: recognises an echo that beats the answer
}

// windowTTL keeps a record past the window so an expired window reads as
// "closed" rather than "unknown" for a while.
const windowTTL = 30 * 24 * time.Hour

// pendingMaxAge bounds how long a reservation of a send still counts: far
// beyond any send's duration, so only a process that died mid-send leaves
// one this old.
const pendingMaxAge = 5 * time.Minute

type allowance struct {
	kv      sdk.KV
	oa      string
	enforce bool
	free    int
	window  time.Duration
	refuse  bool // refuse users with no record
	now     func() time.Time
}

func textHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// noteUserMessage opens a new allowance at the user's message time. A
// redelivered or out-of-order older message changes nothing.
func (a *allowance) noteUserMessage(ctx context.Context, user string, at time.Time) error {
	_, err := updateJSON(ctx, a.kv, windowKey(a.oa, user), windowTTL, func(r *windowRecord, _ bool) (bool, error) {
		if !at.After(r.LastUserAt) {
			return false, nil
		}
		// Keep our in-flight sends: they still count once they land.
		var keep []reply
		for _, p := range r.Replies {
			if isPending(p) && a.now().Sub(p.At) < pendingMaxAge {
				keep = append(keep, p)
			}
		}
		*r = windowRecord{LastUserAt: at, Replies: keep}
		return true, nil
	})
	return err
}

// noteOAMessage counts an OA message sent outside this plugin (an agent in
// the OA manager); each id counts once however often it is delivered.
func (a *allowance) noteOAMessage(ctx context.Context, user, msgID string, at time.Time) error {
	_, err := updateJSON(ctx, a.kv, windowKey(a.oa, user), windowTTL, func(r *windowRecord, _ bool) (bool, error) {
		if at.Before(r.LastUserAt) || slices.ContainsFunc(r.Replies, func(p reply) bool { return p.ID == msgID }) {
			return false, nil
		}
		r.Replies = append(r.Replies, reply{ID: msgID, At: at})
		return true, nil
	})
	return err
}

func isPending(p reply) bool { return len(p.ID) > 8 && p.ID[:8] == "pending:" }

// inflight reports whether one of our sends to user with this text is
// waiting for Zalo's answer: its echo may arrive before the answer does.
func (a *allowance) inflight(ctx context.Context, user, text string) (bool, error) {
	var r windowRecord
	if _, err := getJSON(ctx, a.kv, windowKey(a.oa, user), &r); err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	h := textHash(text)
	return slices.ContainsFunc(r.Replies, func(p reply) bool { return isPending(p) && p.TextHash == h }), nil
}

// reserve checks the allowance and, when a reply is allowed, holds one slot
// for the send identified by key so that concurrent sends cannot overrun
// it. The caller commits the slot with Zalo's message id or releases it.
func (a *allowance) reserve(ctx context.Context, user, key, text string) error {
	now := a.now()
	_, err := updateJSON(ctx, a.kv, windowKey(a.oa, user), windowTTL, func(r *windowRecord, exists bool) (bool, error) {
		// Drop our earlier reservation for the same key and any left by a
		// process that died mid-send, before counting.
		r.Replies = slices.DeleteFunc(r.Replies, func(p reply) bool {
			return p.ID == "pending:"+key || (isPending(p) && now.Sub(p.At) >= pendingMaxAge)
		})
		if err := a.check(user, r, exists, now); err != nil {
			return false, err
		}
		r.Replies = append(r.Replies, reply{ID: "pending:" + key, At: now, Ours: true, TextHash: textHash(text)})
		return true, nil
	})
	return err
}

// check refuses a reply Zalo would refuse or charge for.
func (a *allowance) check(user string, r *windowRecord, exists bool, now time.Time) error {
	if !a.enforce {
		return nil
	}
	if !exists || r.LastUserAt.IsZero() {
		if a.refuse {
			return sdk.Permanent(fmt.Errorf("zalo: no message from user %s on record, so no free-reply window is open (reply_allowance.unknown_contact is refuse)", user)).WithReason("window_closed")
		}
		if !exists {
			return nil
		}
	}
	if r.Refused != "" {
		return sdk.Permanent(fmt.Errorf("zalo: Zalo refused the last reply to user %s (%s, code %s); waiting for the user to write again", user, r.Refused, r.RefusedCode)).WithReason(r.Refused).WithProviderCode(r.RefusedCode)
	}
	if r.LastUserAt.IsZero() {
		return nil
	}
	if since := now.Sub(r.LastUserAt); since > a.window {
		return sdk.Permanent(fmt.Errorf("zalo: user %s last wrote %s ago (at %s), outside Zalo's %s free-reply window; a reply now would be a paid proactive message",
			user, since.Round(time.Minute), r.LastUserAt.UTC().Format(time.RFC3339), a.window)).WithReason("window_closed")
	}
	if n := len(r.Replies); n >= a.free {
		return sdk.Permanent(fmt.Errorf("zalo: the OA already sent %d messages since user %s last wrote; Zalo's free-reply allowance is %d within %s",
			n, user, a.free, a.window)).WithReason("quota_exhausted")
	}
	return nil
}

// commit turns the reserved slot into Zalo's message id.
func (a *allowance) commit(ctx context.Context, user, key, msgID string) error {
	_, err := updateJSON(ctx, a.kv, windowKey(a.oa, user), windowTTL, func(r *windowRecord, exists bool) (bool, error) {
		i := slices.IndexFunc(r.Replies, func(p reply) bool { return p.ID == "pending:"+key })
		switch {
		case i >= 0:
			r.Replies[i].ID, r.Replies[i].TextHash = msgID, ""
		case !exists:
			// Not enforced or unknown contact: start tracking anyway.
			r.Replies = append(r.Replies, reply{ID: msgID, At: a.now(), Ours: true})
		default:
			return false, nil
		}
		return true, nil
	})
	return err
}

// release gives the slot back after a failed send. refusedReason, when
// set, records that Zalo itself refused the user.
func (a *allowance) release(ctx context.Context, user, key, refusedReason, code string) error {
	_, err := updateJSON(ctx, a.kv, windowKey(a.oa, user), windowTTL, func(r *windowRecord, exists bool) (bool, error) {
		if !exists {
			return false, nil
		}
		n := len(r.Replies)
		r.Replies = slices.DeleteFunc(r.Replies, func(p reply) bool { return p.ID == "pending:"+key })
		if refusedReason != "" {
			r.Refused, r.RefusedCode = refusedReason, code
		}
		return n != len(r.Replies) || refusedReason != "", nil
	})
	return err
}
