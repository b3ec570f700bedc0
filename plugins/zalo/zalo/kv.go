package zalo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Keys in the host KV. The hub namespaces them per plugin instance; the OA
// id keeps two OAs apart if one KV ever serves both.
func tokenKey(oa string) string        { return "zalo/" + oa + "/token" }
func windowKey(oa, user string) string { return "zalo/" + oa + "/window/" + user }
func sentKey(oa, msgID string) string  { return "zalo/" + oa + "/sent/" + msgID }
func sendKey(oa, hash string) string   { return "zalo/" + oa + "/send/" + hash }
func profileKey(oa, u string) string   { return "zalo/" + oa + "/profile/" + u }

func isNotFound(err error) bool { return errors.Is(err, sdk.ErrNotFound) }
func isConflict(err error) bool { return errors.Is(err, sdk.ErrConflict) }

// getJSON reads key into v and returns its version; sdk.ErrNotFound when
// the key is absent.
func getJSON(ctx context.Context, kv sdk.KV, key string, v any) (int64, error) {
	b, ver, err := kv.Get(ctx, key)
	if err != nil {
		if isNotFound(err) {
			return 0, sdk.ErrNotFound
		}
		return 0, fmt.Errorf("kv get %s: %w", key, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return 0, sdk.Permanent(fmt.Errorf("kv %s holds a corrupt record: %w", key, err)).WithReason("corrupt_state")
	}
	return ver, nil
}

// casJSON writes v at key if the key is still at version expect (0: absent).
func casJSON(ctx context.Context, kv sdk.KV, key string, expect int64, v any, ttl time.Duration) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	ver, err := kv.CompareAndSwap(ctx, key, expect, b, ttl)
	if err != nil {
		if isConflict(err) {
			return 0, sdk.ErrConflict
		}
		return 0, fmt.Errorf("kv cas %s: %w", key, err)
	}
	return ver, nil
}

// updateJSON applies fn to the record at key (zero value when absent) and
// writes it back with compare-and-swap, retrying on conflicts. fn returns
// false to leave the record unchanged.
//
// With an sdk.HintedKV it first tries the version this process last saw (or
// "absent" for a key it never saw) without reading: each KV call is a
// round trip to the hub, and this process is usually the only writer. The
// swap only succeeds if that version is current, so fn saw the current
// record; anything else (a conflict, fn declining to write or failing on
// the remembered record) falls back to reading.
func updateJSON[T any](ctx context.Context, kv sdk.KV, key string, ttl time.Duration, fn func(rec *T, exists bool) (bool, error)) (T, error) {
	if h, ok := kv.(*sdk.HintedKV); ok {
		var rec T
		raw, ver := h.Hint(key)
		if raw == nil || json.Unmarshal(raw, &rec) == nil {
			if write, err := fn(&rec, raw != nil); err == nil && write {
				if _, err := casJSON(ctx, kv, key, ver, &rec, ttl); err == nil || !isConflict(err) {
					return rec, err
				}
			}
		}
	}
	for attempt := 0; ; attempt++ {
		var rec T
		ver, err := getJSON(ctx, kv, key, &rec)
		if err != nil && !isNotFound(err) {
			return rec, err
		}
		write, err := fn(&rec, err == nil)
		if err != nil || !write {
			return rec, err
		}
		if _, err := casJSON(ctx, kv, key, ver, &rec, ttl); err == nil {
			return rec, nil
		} else if !isConflict(err) {
			return rec, err
		}
		if attempt >= 50 {
			return rec, sdk.Retryable(fmt.Errorf("kv %s: too much contention", key), time.Second)
		}
		if err := ctx.Err(); err != nil {
			return rec, err
		}
	}
}
