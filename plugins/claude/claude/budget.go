package claude

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// spend is what one budget counter holds in the host KV, shared by every
// hub replica.
type spend struct {
	Tokens int64   `json:"tokens"`
	USD    float64 `json:"usd"`
}

func convBudgetKey(conversationKey string) string { return "budget/conv/" + userID(conversationKey) }

func (st *state) dayBudgetKey(now time.Time) string {
	return "budget/day/" + now.In(st.loc).Format("2006-01-02")
}

func (st *state) readSpend(ctx context.Context, key string) (spend, int64, error) {
	b, ver, err := st.kv.Get(ctx, key)
	if errors.Is(err, sdk.ErrNotFound) {
		return spend{}, 0, nil
	}
	if err != nil {
		return spend{}, 0, err
	}
	var s spend
	if err := json.Unmarshal(b, &s); err != nil {
		// A corrupt counter must not block the bot forever: start over.
		return spend{}, ver, nil
	}
	return s, ver, nil
}

// budgetExhausted names the first budget that is used up, or "". The check
// happens before the call, so concurrent calls of one conversation can
// overshoot by at most one call each: a soft limit, by design, with no lock
// held across a model call.
func (st *state) budgetExhausted(ctx context.Context, conversationKey string) (string, error) {
	b := st.cfg.Budget
	if !b.enabled() {
		return "", nil
	}
	if b.PerDayTokens > 0 || b.PerDayUSD > 0 {
		s, _, err := st.readSpend(ctx, st.dayBudgetKey(st.now()))
		if err != nil {
			return "", sdk.Retryable(fmt.Errorf("claude: reading the daily budget from the host KV: %w", err), 0)
		}
		if b.PerDayTokens > 0 && s.Tokens >= b.PerDayTokens {
			return "per_day_tokens", nil
		}
		if b.PerDayUSD > 0 && s.USD >= b.PerDayUSD {
			return "per_day_usd", nil
		}
	}
	if conversationKey != "" && (b.PerConversationTokens > 0 || b.PerConversationUSD > 0) {
		s, _, err := st.readSpend(ctx, convBudgetKey(conversationKey))
		if err != nil {
			return "", sdk.Retryable(fmt.Errorf("claude: reading the conversation budget from the host KV: %w", err), 0)
		}
		if b.PerConversationTokens > 0 && s.Tokens >= b.PerConversationTokens {
			return "per_conversation_tokens", nil
		}
		if b.PerConversationUSD > 0 && s.USD >= b.PerConversationUSD {
			return "per_conversation_usd", nil
		}
	}
	return "", nil
}

// charge adds a call's spending to the day's and the conversation's
// counters with compare-and-swap, so replicas charging at once lose nothing.
func (st *state) charge(ctx context.Context, conversationKey string, u sdk.Usage) error {
	b := st.cfg.Budget
	if !b.enabled() {
		return nil
	}
	tokens := u.InputTokens + u.OutputTokens + u.CacheReadTokens + u.CacheWriteTokens
	var errs []error
	if b.PerDayTokens > 0 || b.PerDayUSD > 0 {
		errs = append(errs, st.addSpend(ctx, st.dayBudgetKey(st.now()), tokens, u.CostUSD, 48*time.Hour))
	}
	if conversationKey != "" && (b.PerConversationTokens > 0 || b.PerConversationUSD > 0) {
		errs = append(errs, st.addSpend(ctx, convBudgetKey(conversationKey), tokens, u.CostUSD, time.Duration(b.ConversationTTL)))
	}
	return errors.Join(errs...)
}

func (st *state) addSpend(ctx context.Context, key string, tokens int64, usd float64, ttl time.Duration) error {
	for range 16 {
		s, ver, err := st.readSpend(ctx, key)
		if err != nil {
			return fmt.Errorf("budget %s: %w", key, err)
		}
		s.Tokens += tokens
		s.USD += usd
		raw, _ := json.Marshal(s)
		_, err = st.kv.CompareAndSwap(ctx, key, ver, raw, ttl)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sdk.ErrConflict) {
			return fmt.Errorf("budget %s: %w", key, err)
		}
	}
	return fmt.Errorf("budget %s: too much contention", key)
}
