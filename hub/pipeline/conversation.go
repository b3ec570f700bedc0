package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/rules"
)

// Conversation states.
const (
	StateBot       = rules.StateBot
	StateHandedOff = rules.StateHandedOff
	StateHuman     = rules.StateHuman
	StateClosed    = rules.StateClosed
)

// NSConversations is the KV namespace of conversation state.
const NSConversations = "conv"

// Conversation is what the hub keeps about one conversation.
type Conversation struct {
	ID         string       `json:"id"`
	Instance   string       `json:"instance"`
	Channel    string       `json:"channel"`
	Key        string       `json:"key"` // the plugin's conversation key
	Contact    sdk.Identity `json:"contact"`
	ContactID  string       `json:"contact_id,omitempty"` // in the CRM
	ContactURL string       `json:"contact_url,omitempty"`
	DealID     string       `json:"deal_id,omitempty"`
	Owner      string       `json:"owner,omitempty"`
	Tags       []string     `json:"tags,omitempty"` // the CRM contact's tags, for the rules

	State    string `json:"state"`
	Team     string `json:"team,omitempty"`
	Priority string `json:"priority,omitempty"`
	Assignee string `json:"assignee,omitempty"`

	Score int           `json:"score"`
	Tier  string        `json:"tier,omitempty"`
	Facts sdk.LeadFacts `json:"facts"`

	FirstSeen      time.Time `json:"first_seen"`
	LastCustomerAt time.Time `json:"last_customer_at,omitzero"`
	LastAgentAt    time.Time `json:"last_agent_at,omitzero"`
	LastBotAt      time.Time `json:"last_bot_at,omitzero"`
	HandedOffAt    time.Time `json:"handed_off_at,omitzero"`
	HandoffReason  string    `json:"handoff_reason,omitempty"`
	// HandoffKey is the reply task that handed the conversation over: its
	// retry (the process died after the state change, before the hook,
	// the follow-ups or the customer's message) finishes the turn.
	HandoffKey string `json:"handoff_key,omitempty"`
	Turns      int    `json:"turns"`             // customer messages
	Flagged    string `json:"flagged,omitempty"` // why the conversation needs a person's look
	LastEvent  string `json:"last_event,omitempty"`

	// Explain is the last decision's explanation, for the admin API.
	Explain      string          `json:"explain,omitempty"`
	LastDecision *rules.Decision `json:"last_decision,omitempty"`
	Cost         Cost            `json:"cost"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

// Cost counts what the LLM cost for a conversation.
type Cost struct {
	InputTokens      int64   `json:"input_tokens"`
	OutputTokens     int64   `json:"output_tokens"`
	CacheReadTokens  int64   `json:"cache_read_tokens"`
	CacheWriteTokens int64   `json:"cache_write_tokens"`
	USD              float64 `json:"usd"`
	Calls            int     `json:"calls"`
}

// Conversations reads and updates conversation state with compare-and-set,
// so the pipeline, the admin API and other replicas never lose a write.
//
// It keeps the last decoded version of recently used conversations: a
// message's task updates its conversation several times, and decoding the
// stored JSON each time was a fifth of the hub's CPU. The store's versions
// are never reused (not even after a delete), so a cached version either
// is the current one or makes the compare-and-swap fail and the update
// read again: the cache can save work, never serve a lost write.
type Conversations struct {
	KV  store.KV
	Now func() time.Time

	mu    sync.Mutex
	cache map[string]cachedConv
}

type cachedConv struct {
	ver  int64
	conv *Conversation // never handed out: callers get a clone
}

// convCacheSize bounds the cache; at a few KB per conversation this is a
// few tens of MB at most.
const convCacheSize = 8192

func (c *Conversations) cached(id string) (*Conversation, int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cache[id]
	if !ok {
		return nil, 0, false
	}
	return e.conv.clone(), e.ver, true
}

func (c *Conversations) remember(id string, ver int64, conv *Conversation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache == nil {
		c.cache = make(map[string]cachedConv)
	}
	if e, ok := c.cache[id]; ok && e.ver > ver {
		return // a newer version got here first
	}
	if _, ok := c.cache[id]; !ok && len(c.cache) >= convCacheSize {
		for k := range c.cache { // any entry: maps iterate from a random point
			delete(c.cache, k)
			break
		}
	}
	c.cache[id] = cachedConv{ver: ver, conv: conv.clone()}
}

func (c *Conversations) forget(id string) {
	c.mu.Lock()
	delete(c.cache, id)
	c.mu.Unlock()
}

// clone copies what an update may change in place; LastDecision is
// replaced, never modified, so it is shared.
func (conv *Conversation) clone() *Conversation {
	cp := *conv
	cp.Tags = slices.Clone(conv.Tags)
	cp.Facts.Extra = maps.Clone(conv.Facts.Extra)
	return &cp
}

// Get returns a conversation or store.ErrNotFound. It always reads the
// store, so what it returns is current.
func (c *Conversations) Get(ctx context.Context, id string) (*Conversation, int64, error) {
	b, ver, err := c.KV.Get(ctx, NSConversations, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.forget(id)
		}
		return nil, 0, err
	}
	if conv, cver, ok := c.cached(id); ok && cver == ver {
		return conv, ver, nil
	}
	var conv Conversation
	if err := json.Unmarshal(b, &conv); err != nil {
		return nil, 0, fmt.Errorf("conversation %s: %w", id, err)
	}
	c.remember(id, ver, &conv)
	return &conv, ver, nil
}

// Update applies f to the conversation (a new one when missing, from
// init) and stores it, retrying on a concurrent write. f may be called
// more than once and must only change conv. The first attempt starts from
// the cached version without reading the store; a stale cache costs one
// failed compare-and-swap.
func (c *Conversations) Update(ctx context.Context, id string, init func() *Conversation, f func(*Conversation) error) (*Conversation, error) {
	for attempt := 0; attempt < 50; attempt++ {
		conv, ver, ok := (*Conversation)(nil), int64(0), false
		if attempt == 0 {
			conv, ver, ok = c.cached(id)
		}
		var err error
		if !ok {
			conv, ver, err = c.Get(ctx, id)
		}
		switch {
		case errors.Is(err, store.ErrNotFound):
			if init == nil {
				return nil, err
			}
			conv, ver = init(), 0
			conv.ID = id
			if conv.State == "" {
				conv.State = StateBot
			}
			if conv.FirstSeen.IsZero() {
				conv.FirstSeen = c.Now()
			}
		case err != nil:
			return nil, err
		}
		if err := f(conv); err != nil {
			return nil, err
		}
		conv.UpdatedAt = c.Now()
		b, err := json.Marshal(conv)
		if err != nil {
			return nil, err
		}
		nver, err := c.KV.CompareAndSwap(ctx, NSConversations, id, ver, b, 0)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			// The write may or may not have landed: read next time.
			c.forget(id)
			return nil, err
		}
		c.remember(id, nver, conv)
		return conv, nil
	}
	return nil, fmt.Errorf("conversation %s: too many concurrent updates", id)
}
