package whatsapp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// State kept in the host KV, which every hub replica shares: a webhook may
// land on one replica and the reply go out from another.

const casAttempts = 8

// windows tracks the 24-hour customer-service window per contact: the key
// holds the Unix second of the contact's latest customer message.
type windows struct {
	kv  sdk.KV
	pn  string
	now func() time.Time
}

func (w windows) key(user string) string { return "window/" + w.pn + "/" + user }

// windowState is what Send needs: whether the window is open, and the KV
// version read, so a 131047 from Meta closes exactly the window we saw.
type windowState struct {
	open    bool
	last    time.Time
	version int64
}

func (w windows) get(ctx context.Context, user string) (windowState, error) {
	v, ver, err := w.kv.Get(ctx, w.key(user))
	if errors.Is(err, sdk.ErrNotFound) {
		return windowState{}, nil
	}
	if err != nil {
		return windowState{}, fmt.Errorf("read window: %w", err)
	}
	sec, perr := strconv.ParseInt(string(v), 10, 64)
	if perr != nil || sec <= 0 {
		return windowState{version: ver}, nil // closed (0) or unreadable
	}
	last := time.Unix(sec, 0)
	return windowState{open: w.now().Before(last.Add(WindowDuration)), last: last, version: ver}, nil
}

// renew moves the window's start to at, unless a later message already did
// (webhooks arrive out of order). Compare-and-swap, because two replicas
// may handle two messages of one contact at once.
func (w windows) renew(ctx context.Context, user string, at time.Time) error {
	if now := w.now(); at.After(now) {
		at = now // a skewed provider clock must not extend the window
	}
	ttl := at.Add(WindowDuration).Sub(w.now())
	if ttl <= 0 {
		return nil // an old message (a redelivery days later): nothing to open
	}
	ttl += time.Hour // slack so a read near the edge still sees the value
	val := []byte(strconv.FormatInt(at.Unix(), 10))
	// Usually this process wrote the window last: try its version first,
	// skipping a round trip to the hub; a stale hint only fails the swap.
	if h, ok := w.kv.(*sdk.HintedKV); ok {
		cur, ver := h.Hint(w.key(user))
		if sec, perr := strconv.ParseInt(string(cur), 10, 64); cur == nil || perr == nil && sec < at.Unix() {
			if _, err := w.kv.CompareAndSwap(ctx, w.key(user), ver, val, ttl); err == nil {
				return nil
			} else if !errors.Is(err, sdk.ErrConflict) {
				return fmt.Errorf("write window: %w", err)
			}
		}
	}
	for range casAttempts {
		cur, ver, err := w.kv.Get(ctx, w.key(user))
		switch {
		case errors.Is(err, sdk.ErrNotFound):
			ver = 0
		case err != nil:
			return fmt.Errorf("read window: %w", err)
		default:
			if sec, perr := strconv.ParseInt(string(cur), 10, 64); perr == nil && sec >= at.Unix() {
				return nil
			}
		}
		_, err = w.kv.CompareAndSwap(ctx, w.key(user), ver, val, ttl)
		if errors.Is(err, sdk.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write window: %w", err)
		}
		return nil
	}
	return fmt.Errorf("write window: %d compare-and-swap conflicts in a row", casAttempts)
}

// OpenWindow records a customer message from user (a wa_id, or a BSUID) to
// phoneNumberID at time at, exactly as an inbound webhook does. For test
// fixtures, and for a hub taking over a number whose customers wrote in the
// last 24 hours through another system. kv is the plugin instance's KV (the
// hub namespaces it per instance).
func OpenWindow(ctx context.Context, kv sdk.KV, phoneNumberID, user string, at time.Time) error {
	return windows{kv: kv, pn: phoneNumberID, now: time.Now}.renew(ctx, normalizeWaID(user), at)
}

// close marks the window closed after Meta said 131047, unless a newer
// customer message renewed it since we read version.
func (w windows) close(ctx context.Context, user string, version int64) {
	if version == 0 {
		return
	}
	_, _ = w.kv.CompareAndSwap(ctx, w.key(user), version, []byte("0"), WindowDuration)
}

// claims make Send idempotent: WhatsApp has no idempotency key, so the
// first send with a key claims it in the KV, and the provider's message id
// replaces the claim once Meta accepted. A repeat returns that id.
type claims struct {
	kv  sdk.KV
	now func() time.Time
}

const (
	claimPrefix  = "sent/"
	pendingMark  = "pending:"
	pendingTTL   = 2 * time.Minute // longer than any send; after it, a crashed send is retried
	sentTTL      = 48 * time.Hour  // past the hub's retry horizon
	inFlightWait = 5 * time.Second
)

func (claims) key(idem string) string {
	sum := sha256.Sum256([]byte(idem))
	return claimPrefix + hex.EncodeToString(sum[:16])
}

// claim returns the provider id of an earlier send with this key, or takes
// the key for this call (release or complete it afterwards).
func (c claims) claim(ctx context.Context, idem string) (prior string, version int64, err error) {
	key := c.key(idem)
	pending := []byte(pendingMark + strconv.FormatInt(c.now().Unix(), 10))
	for range casAttempts {
		v, ver, gerr := c.kv.Get(ctx, key)
		switch {
		case errors.Is(gerr, sdk.ErrNotFound):
			ver = 0
		case gerr != nil:
			return "", 0, fmt.Errorf("read send claim: %w", gerr)
		case strings.HasPrefix(string(v), pendingMark):
			return "", 0, sdk.Retryable(errors.New("whatsapp send: another send with this idempotency key is in flight"), inFlightWait).
				WithReason(ReasonInFlight)
		default:
			return string(v), ver, nil
		}
		nv, cerr := c.kv.CompareAndSwap(ctx, key, ver, pending, pendingTTL)
		if errors.Is(cerr, sdk.ErrConflict) {
			continue
		}
		if cerr != nil {
			return "", 0, fmt.Errorf("write send claim: %w", cerr)
		}
		return "", nv, nil
	}
	return "", 0, sdk.Retryable(errors.New("whatsapp send: idempotency claim kept conflicting"), inFlightWait).WithReason(ReasonInFlight)
}

// complete records the provider id under the claimed key.
func (c claims) complete(ctx context.Context, idem string, version int64, providerID string) error {
	_, err := c.kv.CompareAndSwap(ctx, c.key(idem), version, []byte(providerID), sentTTL)
	return err
}

// release frees the key after a send that Meta refused, so a retry can go.
func (c claims) release(ctx context.Context, idem string, version int64) {
	// The KV has no conditional delete: check that the claim is still ours
	// (a pending claim of this version) first.
	v, ver, err := c.kv.Get(ctx, c.key(idem))
	if err == nil && ver == version && strings.HasPrefix(string(v), pendingMark) {
		_ = c.kv.Delete(ctx, c.key(idem))
	}
}
