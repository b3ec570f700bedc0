package zalo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// tokenRecord is the OA's OAuth state in the host KV, shared by every hub
// replica. Zalo's refresh token is single-use and rotates on each refresh,
// so the record is the only copy of the live refresh token: it changes only
// by compare-and-swap, and a lease in it makes sure one replica at a time
// spends the refresh token.
type tokenRecord struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"` // zero: unknown, trust until Zalo rejects it
	// Seed fingerprints the config tokens this lineage started from, so a
	// config with new tokens (the OA was authorised again) replaces it and
	// an unchanged config does not.
	Seed string `json:"seed"`
	// OldSeeds are the fingerprints of config tokens replaced earlier: a
	// replica still running an old config must not re-seed spent tokens.
	OldSeeds   []string  `json:"old_seeds,omitempty"`
	Generation int64     `json:"generation"`
	LeaseOwner string    `json:"lease_owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// tokenStore hands out a valid access token and refreshes it.
type tokenStore struct {
	kv            sdk.KV
	key           string
	owner         string // this plugin process, for the lease
	api           *apiClient
	now           func() time.Time
	refreshBefore time.Duration
	lease         time.Duration
	httpTimeout   time.Duration
	poll          time.Duration
	log           *slog.Logger

	sem chan struct{} // one refresh at a time in this process

	mu      sync.Mutex
	cached  tokenRecord
	unsaved *rotation // a rotated pair the KV has not taken yet
}

type rotation struct {
	prevRefresh string
	next        tokenRecord
}

func seedFingerprint(access, refresh string) string {
	sum := sha256.Sum256([]byte("zalo-token-seed\x00" + access + "\x00" + refresh))
	return hex.EncodeToString(sum[:16])
}

// seed writes the config's tokens into the KV when it holds none for this
// OA, or holds a lineage seeded from other config tokens.
func (t *tokenStore) seed(ctx context.Context, cfg *Config) error {
	fp := seedFingerprint(cfg.AccessToken, cfg.RefreshToken)
	rec, err := updateJSON(ctx, t.kv, t.key, 0, func(cur *tokenRecord, exists bool) (bool, error) {
		if exists && (cur.Seed == fp || slices.Contains(cur.OldSeeds, fp)) {
			return false, nil // the KV's lineage grew from these tokens or replaced them: keep it
		}
		var old []string
		if exists {
			t.log.Info("zalo: config carries new OA tokens; replacing the stored ones", "generation", cur.Generation)
			old = append(cur.OldSeeds, cur.Seed)
			if len(old) > 16 {
				old = old[len(old)-16:]
			}
		}
		*cur = tokenRecord{AccessToken: cfg.AccessToken, RefreshToken: cfg.RefreshToken,
			ExpiresAt: cfg.AccessTokenExpiresAt, Seed: fp, OldSeeds: old, UpdatedAt: t.now()}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("seed zalo tokens: %w", err)
	}
	t.setCache(rec)
	return nil
}

func (t *tokenStore) setCache(rec tokenRecord) {
	t.mu.Lock()
	t.cached = rec
	t.mu.Unlock()
}

// fresh reports whether rec's access token can be used now without a
// refresh: it is refreshed refreshBefore its expiry.
func (t *tokenStore) fresh(rec tokenRecord) bool {
	return rec.AccessToken != "" && (rec.ExpiresAt.IsZero() || t.now().Add(t.refreshBefore).Before(rec.ExpiresAt))
}

// Access returns an access token that is not about to expire.
func (t *tokenStore) Access(ctx context.Context) (string, error) {
	t.mu.Lock()
	rec := t.cached
	t.mu.Unlock()
	if t.fresh(rec) {
		return rec.AccessToken, nil
	}
	return t.refresh(ctx, "")
}

// Invalidate is called when Zalo rejected the access token failed: it
// returns a newer token, refreshing unless another replica already did.
func (t *tokenStore) Invalidate(ctx context.Context, failed string) (string, error) {
	return t.refresh(ctx, failed)
}

func (t *tokenStore) load(ctx context.Context) (tokenRecord, int64, error) {
	var rec tokenRecord
	ver, err := getJSON(ctx, t.kv, t.key, &rec)
	if isNotFound(err) {
		return rec, 0, sdk.Unauthorized(errors.New("zalo: no OA tokens in the store; set access_token/refresh_token in the config")).WithReason("no_token")
	}
	return rec, ver, err
}

func (t *tokenStore) refresh(ctx context.Context, failed string) (string, error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-t.sem }()

	if err := t.storeUnsaved(ctx); err != nil {
		return "", err
	}
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		rec, ver, err := t.load(ctx)
		if err != nil {
			return "", err
		}
		if rec.AccessToken != failed && t.fresh(rec) {
			t.setCache(rec) // another replica (or an earlier call) refreshed already
			return rec.AccessToken, nil
		}
		if rec.RefreshToken == "" {
			return "", sdk.Unauthorized(errors.New("zalo: the access token is expired and there is no refresh token; authorise the OA again")).WithReason("reauthorize")
		}
		now := t.now()
		if rec.LeaseOwner != "" && rec.LeaseOwner != t.owner && now.Before(rec.LeaseUntil) {
			// Another replica is spending the refresh token: wait for the
			// pair it stores rather than burn the same token.
			if err := sleepCtx(ctx, t.poll); err != nil {
				return "", err
			}
			continue
		}
		leased := rec
		leased.LeaseOwner, leased.LeaseUntil = t.owner, now.Add(t.lease)
		if _, err := casJSON(ctx, t.kv, t.key, ver, &leased, 0); err != nil {
			if isConflict(err) {
				continue
			}
			return "", err
		}
		tok, retry, err := t.refreshLeased(ctx, rec)
		if retry {
			continue
		}
		return tok, err
	}
}

// refreshLeased spends rec's refresh token while holding the lease and
// stores the new pair before anyone uses it. retry asks the caller to look
// at the KV again.
func (t *tokenStore) refreshLeased(ctx context.Context, rec tokenRecord) (string, bool, error) {
	// Once the request is out, Zalo may have rotated the token: finish
	// (and store) even if the caller gives up, bounded by the HTTP timeout
	// that config validation keeps under the lease.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.httpTimeout)
	defer cancel()
	access, refresh, expiresIn, err := t.api.refresh(rctx, rec.RefreshToken)
	if err != nil {
		t.releaseLease(rctx)
		if sdk.CodeOf(err) == sdk.CodeUnauthorized {
			// Rejected: if the KV meanwhile holds another refresh token
			// (re-seeded, or a replica whose lease we outlived stored
			// one), use that instead of failing.
			if cur, _, lerr := t.load(rctx); lerr == nil && cur.RefreshToken != rec.RefreshToken {
				return "", true, nil
			}
			t.log.Error("zalo: refresh token rejected; the OA must be authorised again", "reason", sdk.ReasonOf(err))
		}
		return "", false, fmt.Errorf("refresh zalo access token: %w", err)
	}
	if refresh == "" {
		refresh = rec.RefreshToken // not rotated by this answer
	}
	if expiresIn <= 0 {
		expiresIn = 25 * time.Hour // Zalo's documented lifetime
	}
	now := t.now()
	next := tokenRecord{AccessToken: access, RefreshToken: refresh, ExpiresAt: now.Add(expiresIn),
		Seed: rec.Seed, OldSeeds: rec.OldSeeds, Generation: rec.Generation + 1, UpdatedAt: now}
	stored, err := t.storeRotated(rctx, rec.RefreshToken, next)
	if err != nil {
		// The new refresh token exists only here now: keep it and try
		// again on the next call instead of losing the OA's authorisation.
		t.mu.Lock()
		t.unsaved = &rotation{prevRefresh: rec.RefreshToken, next: next}
		t.mu.Unlock()
		t.log.Error("zalo: refreshed the OA token but could not store it; will retry", "error", err.Error())
		return "", false, sdk.Retryable(fmt.Errorf("store refreshed zalo token: %w", err), time.Second)
	}
	t.setCache(stored)
	t.log.Info("zalo: OA access token refreshed", "generation", stored.Generation, "expires_at", stored.ExpiresAt.Format(time.RFC3339))
	return stored.AccessToken, false, nil
}

// storeRotated writes next over the record as long as the record still
// holds prevRefresh (leased or not). If it holds another refresh token, a
// newer lineage won and is returned instead.
func (t *tokenStore) storeRotated(ctx context.Context, prevRefresh string, next tokenRecord) (tokenRecord, error) {
	var result tokenRecord
	_, err := updateJSON(ctx, t.kv, t.key, 0, func(cur *tokenRecord, exists bool) (bool, error) {
		if exists && cur.RefreshToken != prevRefresh {
			t.log.Warn("zalo: another token lineage was stored while refreshing; using it")
			result = *cur
			return false, nil
		}
		*cur = next
		result = next
		return true, nil
	})
	return result, err
}

func (t *tokenStore) storeUnsaved(ctx context.Context) error {
	t.mu.Lock()
	u := t.unsaved
	t.mu.Unlock()
	if u == nil {
		return nil
	}
	stored, err := t.storeRotated(ctx, u.prevRefresh, u.next)
	if err != nil {
		return sdk.Retryable(fmt.Errorf("store refreshed zalo token: %w", err), time.Second)
	}
	t.mu.Lock()
	t.unsaved = nil
	t.mu.Unlock()
	t.setCache(stored)
	return nil
}

// releaseLease clears our lease after a failed refresh so others need not
// wait for it to run out.
func (t *tokenStore) releaseLease(ctx context.Context) {
	_, err := updateJSON(ctx, t.kv, t.key, 0, func(cur *tokenRecord, exists bool) (bool, error) {
		if !exists || cur.LeaseOwner != t.owner {
			return false, nil
		}
		cur.LeaseOwner, cur.LeaseUntil = "", time.Time{}
		return true, nil
	})
	if err != nil {
		t.log.Warn("zalo: could not release the token lease; it runs out by itself", "error", err.Error())
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
