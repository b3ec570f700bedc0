package hubspot

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// owners maps hub agent ids to HubSpot owner ids and back: first the
// owners config map, then owner_emails (or an agent id that is an email)
// through the owners API. Resolved emails are cached in memory and in the
// host KV, so the reverse mapping survives restarts and is shared.
type owners struct {
	api    *client
	kv     sdk.KV
	byID   map[string]string // agent → owner id (config)
	emails map[string]string // agent → email (config)

	mu    sync.Mutex
	cache map[string]string // agent → owner id, resolved by email
	rev   map[string]string // owner id → agent
}

func newOwners(api *client, kv sdk.KV, cfg Config) *owners {
	o := &owners{api: api, kv: kv, byID: cfg.Owners, emails: cfg.OwnerEmails,
		cache: map[string]string{}, rev: map[string]string{}}
	for agent, id := range cfg.Owners {
		o.rev[id] = agent
	}
	return o
}

// toHubSpot returns the owner id for agent, or "" when the agent maps to
// no HubSpot user.
func (o *owners) toHubSpot(ctx context.Context, agent string) (string, error) {
	if agent == "" {
		return "", nil
	}
	if id, ok := o.byID[agent]; ok {
		return id, nil
	}
	email := o.emails[agent]
	if email == "" && strings.Contains(agent, "@") {
		email = agent
	}
	if email == "" {
		return "", nil
	}
	o.mu.Lock()
	id, ok := o.cache[agent]
	o.mu.Unlock()
	if ok {
		return id, nil
	}
	var out struct {
		Results []struct {
			ID    string `json:"id"`
			Email string `json:"email"`
		} `json:"results"`
	}
	q := url.Values{"email": {email}, "limit": {"100"}, "archived": {"false"}}
	if err := o.api.do(ctx, http.MethodGet, "/crm/v3/owners/", q, nil, &out); err != nil {
		return "", fmt.Errorf("look up the HubSpot owner of agent %s: %w", agent, err)
	}
	for _, r := range out.Results {
		if strings.EqualFold(r.Email, email) {
			id = r.ID
			break
		}
	}
	o.mu.Lock()
	o.cache[agent] = id // "" too: an unknown email is not asked again until restart
	// One owner may be reached through several agent ids; a configured
	// agent is the one the hub knows, so it wins the reverse mapping.
	_, taken := o.rev[id]
	remember := id != "" && (!taken || o.emails[agent] != "")
	if remember {
		o.rev[id] = agent
	}
	o.mu.Unlock()
	if remember {
		_, _ = o.kv.Put(ctx, "owner/"+id, []byte(agent), 30*24*time.Hour)
	}
	return id, nil
}

// toAgent returns the agent id for a HubSpot owner id, or "".
func (o *owners) toAgent(ctx context.Context, ownerID string) string {
	if ownerID == "" {
		return ""
	}
	o.mu.Lock()
	agent, ok := o.rev[ownerID]
	o.mu.Unlock()
	if ok {
		return agent
	}
	v, _, err := o.kv.Get(ctx, "owner/"+ownerID)
	if err != nil {
		return "" // unknown (or the KV is unreachable): the caller falls back
	}
	o.mu.Lock()
	o.rev[ownerID] = string(v)
	o.mu.Unlock()
	return string(v)
}
