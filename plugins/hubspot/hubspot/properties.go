package hubspot

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Contact properties this plugin writes. HubSpot's own properties are used
// where one fits (email, phone, firstname, hubspot_owner_id); the rest are
// custom properties, created on demand with create_properties: true.
const (
	propEmail     = "email"
	propPhone     = "phone"
	propFirstName = "firstname"
	propLastName  = "lastname"
	propOwner     = "hubspot_owner_id"

	propScore         = "switchboard_score"          // number; only rises unless ResetScore
	propTier          = "switchboard_tier"           // hot, warm, ...
	propSource        = "switchboard_source_channel" // first channel the lead came from
	propCampaign      = "switchboard_campaign"       // first campaign attributed
	propIntent        = "switchboard_intent"         // LLM intent
	propNeed          = "switchboard_need"           // BANT: need
	propBudget        = "switchboard_budget"         // BANT: budget
	propTimeline      = "switchboard_timeline"       // BANT: timeline
	propDecisionMaker = "switchboard_decision_maker" // bool; set once known
	propAction        = "switchboard_action"         // next action the LLM suggested
	propConfidence    = "switchboard_confidence"     // number 0..1
	propEstimate      = "switchboard_estimate"       // number: deal estimate
	propExtra         = "switchboard_facts_extra"    // JSON object of other facts
	propTags          = "switchboard_tags"           // ";"-separated
	propOwnerAgent    = "switchboard_owner_agent"    // hub agent id of the owner
	propName          = "switchboard_name"           // the name this plugin last wrote
	channelPropPrefix = "switchboard_"               // + channel + "_id": a channel's user id
	channelPropSuffix = "_id"
)

type propDef struct {
	Name, Label, Type, FieldType, Description string
}

var customProps = map[string]propDef{
	propScore:         {propScore, "Switchboard lead score", "number", "number", "Lead score from Switchboard's rules; only rises unless reset"},
	propTier:          {propTier, "Switchboard tier", "string", "text", "Lead tier from Switchboard's rules"},
	propSource:        {propSource, "Switchboard source channel", "string", "text", "Chat channel the lead first came from"},
	propCampaign:      {propCampaign, "Switchboard campaign", "string", "text", "Campaign the lead first came from"},
	propIntent:        {propIntent, "Switchboard intent", "string", "text", "Intent of the lead's last message"},
	propNeed:          {propNeed, "Switchboard need", "string", "textarea", "What the lead needs"},
	propBudget:        {propBudget, "Switchboard budget", "string", "text", "The lead's budget, as said"},
	propTimeline:      {propTimeline, "Switchboard timeline", "string", "text", "When the lead wants to buy, as said"},
	propDecisionMaker: {propDecisionMaker, "Switchboard decision maker", "bool", "booleancheckbox", "Whether the lead decides the purchase"},
	propAction:        {propAction, "Switchboard next action", "string", "text", "Next action suggested for the lead"},
	propConfidence:    {propConfidence, "Switchboard confidence", "number", "number", "Confidence of the extracted facts (0..1)"},
	propEstimate:      {propEstimate, "Switchboard estimate", "number", "number", "Estimated deal value"},
	propExtra:         {propExtra, "Switchboard other facts", "string", "textarea", "Other lead facts, as JSON"},
	propTags:          {propTags, "Switchboard tags", "string", "text", "Tags, separated by ;"},
	propOwnerAgent:    {propOwnerAgent, "Switchboard owner agent", "string", "text", "Switchboard agent id of the owner"},
	propName:          {propName, "Switchboard name", "string", "text", "The name Switchboard last wrote; a different current name was edited by a person and is kept"},
}

// channelProp names the property holding a channel's user ids.
func (s *state) channelProp(channel string) string {
	channel = strings.ToLower(strings.TrimSpace(channel))
	if p, ok := s.cfg.ChannelProperties[channel]; ok {
		return p
	}
	var b strings.Builder
	for _, r := range channel {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return channelPropPrefix + b.String() + channelPropSuffix
}

// channelOf is the inverse of channelProp, "" for other properties.
func (s *state) channelOf(prop string) string {
	for ch, p := range s.cfg.ChannelProperties {
		if p == prop {
			return ch
		}
	}
	if _, ours := customProps[prop]; ours {
		return ""
	}
	if strings.HasPrefix(prop, channelPropPrefix) && strings.HasSuffix(prop, channelPropSuffix) {
		return strings.TrimSuffix(strings.TrimPrefix(prop, channelPropPrefix), channelPropSuffix)
	}
	return ""
}

// propertySet knows which contact properties exist in the account and
// creates the missing ones when allowed.
type propertySet struct {
	api    *client
	create bool
	group  string

	mu     sync.Mutex
	loaded bool
	known  map[string]bool
}

type propertyList struct {
	Results []struct {
		Name string `json:"name"`
	} `json:"results"`
}

func (p *propertySet) loadLocked(ctx context.Context) error {
	if p.loaded {
		return nil
	}
	var out propertyList
	if err := p.api.do(ctx, http.MethodGet, "/crm/v3/properties/contacts", nil, nil, &out); err != nil {
		return fmt.Errorf("list contact properties: %w", err)
	}
	for _, r := range out.Results {
		p.known[r.Name] = true
	}
	p.loaded = true
	return nil
}

// exists reports which of names exist (loading the list once).
func (p *propertySet) exists(ctx context.Context, name string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadLocked(ctx); err != nil {
		return false, err
	}
	return p.known[name], nil
}

// channelProps lists the known properties that hold channel ids.
func (p *propertySet) all(ctx context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadLocked(ctx); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(p.known))
	for n := range p.known {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// ensure makes sure the named custom properties exist. Properties created
// by an admin after the list was loaded are found by a direct read.
func (p *propertySet) ensure(ctx context.Context, names []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	fresh := !p.loaded
	if err := p.loadLocked(ctx); err != nil {
		return err
	}
	var missing []string
	for _, n := range uniqueSorted(names) {
		if p.known[n] {
			continue
		}
		if !fresh { // the list may be older than the property
			err := p.api.do(ctx, http.MethodGet, "/crm/v3/properties/contacts/"+n, nil, nil, nil)
			switch {
			case err == nil:
				p.known[n] = true
				continue
			case statusOf(err) != http.StatusNotFound:
				return fmt.Errorf("read contact property %s: %w", n, err)
			}
		}
		if !p.create {
			missing = append(missing, n)
			continue
		}
		if err := p.createProp(ctx, n); err != nil {
			return err
		}
		p.known[n] = true
	}
	if len(missing) > 0 {
		return sdk.Invalid(fmt.Errorf("HubSpot contact properties %s are missing: create them (see the plugin's docs) or set create_properties: true",
			strings.Join(missing, ", "))).WithReason("missing_properties")
	}
	return nil
}

func (p *propertySet) createProp(ctx context.Context, name string) error {
	def, ok := customProps[name]
	if !ok { // a channel id property
		def = propDef{Name: name, Label: "Switchboard " + strings.TrimSuffix(strings.TrimPrefix(name, channelPropPrefix), channelPropSuffix) + " id",
			Type: "string", FieldType: "text", Description: "User id of the contact on this chat channel, written by Switchboard"}
	}
	body := map[string]any{"name": def.Name, "label": def.Label, "type": def.Type, "fieldType": def.FieldType,
		"groupName": p.group, "description": def.Description, "formField": false}
	err := p.api.do(ctx, http.MethodPost, "/crm/v3/properties/contacts", nil, body, nil)
	if err != nil && statusOf(err) != http.StatusConflict { // 409: another replica made it
		return fmt.Errorf("create contact property %s: %w", name, err)
	}
	return nil
}
