package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// hsObject is a CRM record as HubSpot sends it. Property values are
// strings, or null for a requested property with no value.
type hsObject struct {
	ID         string             `json:"id"`
	Properties map[string]*string `json:"properties"`
	CreatedAt  time.Time          `json:"createdAt"`
	UpdatedAt  time.Time          `json:"updatedAt"`
	Archived   bool               `json:"archived"`
}

func (o *hsObject) props() map[string]string {
	out := make(map[string]string, len(o.Properties))
	for k, v := range o.Properties {
		if v != nil && *v != "" {
			out[k] = *v
		}
	}
	return out
}

// ident is one identity property value to find a contact by. rank orders
// the evidence: a channel user id beats an email, which beats a phone.
type ident struct {
	prop, value string
	rank        int
}

func (i ident) key() string { return i.prop + "=" + i.value }

// indexTTL: the identity → contact id entries cover HubSpot's search lag
// and spare a search per message; older ones are found by search again.
const indexTTL = 90 * 24 * time.Hour

func normEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// normPhone keeps a leading + and the digits, so "+84 90-123 4567" and
// "+84901234567" are the same person.
func normPhone(s string) string {
	var b strings.Builder
	for i, r := range strings.TrimSpace(s) {
		if (r >= '0' && r <= '9') || (r == '+' && i == 0) {
			b.WriteRune(r)
		}
	}
	if b.Len() == 1 && strings.HasPrefix(b.String(), "+") {
		return ""
	}
	return b.String()
}

// identities lists what a contact can be found by, best evidence first.
func (s *state) identities(c *sdk.Contact) []ident {
	var out []ident
	seen := map[string]bool{}
	add := func(prop, v string, rank int) {
		if v == "" || seen[prop+"="+v] {
			return
		}
		seen[prop+"="+v] = true
		out = append(out, ident{prop: prop, value: v, rank: rank})
	}
	for _, id := range c.Identities {
		switch ch := strings.ToLower(strings.TrimSpace(id.Channel)); {
		case ch == "email":
			add(propEmail, normEmail(firstNonEmpty(id.Email, id.UserID)), 1)
		case ch == "phone" || ch == "sms":
			add(propPhone, normPhone(firstNonEmpty(id.Phone, id.UserID)), 2)
		case ch != "" && id.UserID != "":
			add(s.channelProp(ch), strings.TrimSpace(id.UserID), 0)
		}
		add(propEmail, normEmail(id.Email), 1)
		add(propPhone, normPhone(id.Phone), 2)
	}
	add(propEmail, normEmail(c.Email), 1)
	add(propPhone, normPhone(c.Phone), 2)
	sort.SliceStable(out, func(i, j int) bool { return out[i].rank < out[j].rank })
	return out
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// UpsertContact implements sdk.CRM.
//
// The identities are locked (in-process and across replicas), then the
// contact is found through the identity index in the host KV, or HubSpot's
// search, and updated, or created. A 409 on create (the email exists) is
// resolved to the existing contact, which is then updated. The update is a
// read-modify-write under a second lock on the contact id, so the score
// rule holds even against an upsert through other identities.
func (p *CRM) UpsertContact(ctx context.Context, req *sdk.UpsertContactRequest) (*sdk.UpsertContactResult, error) {
	s, err := p.state()
	if err != nil {
		return nil, err
	}
	ct := req.Contact
	ids := s.identities(&ct)
	if len(ids) == 0 && ct.ID == "" {
		return nil, sdk.Invalid(errors.New("hubspot: contact has no id and no identity (channel user id, phone or email)"))
	}
	if err := s.props.ensure(ctx, s.neededProps(ids)); err != nil {
		return nil, fmt.Errorf("hubspot upsert contact: %w", err)
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = "ident:" + id.key()
	}
	lctx, unlock, err := s.locks.lock(ctx, keys...)
	if err != nil {
		return nil, err
	}
	defer unlock()

	id := ct.ID
	useIndex := true
	for attempt := 0; ; attempt++ {
		if ct.ID == "" {
			if id, err = s.resolve(lctx, ids, useIndex); err != nil {
				return nil, fmt.Errorf("hubspot upsert contact: %w", err)
			}
		}
		created := false
		var obj *hsObject
		if id == "" {
			obj, err = s.createContact(lctx, &ct, ids)
			if err == nil {
				created = true
			} else if id = existingID(err); id == "" {
				return nil, fmt.Errorf("hubspot upsert contact: %w", err)
			} else {
				s.log.Debug("hubspot contact create hit an existing contact; updating it", "contact_id", id)
			}
		}
		if !created {
			obj, err = s.updateContact(lctx, id, &ct, ids)
			if sdk.CodeOf(err) == sdk.CodeNotFound && ct.ID == "" && useIndex && attempt == 0 {
				// The index pointed at a contact deleted or merged away in
				// HubSpot: forget it and search again.
				s.dropIndex(lctx, ids)
				useIndex = false
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("hubspot upsert contact %s: %w", id, err)
			}
		}
		s.index(lctx, ids, obj.ID)
		c := s.toContact(lctx, obj, ct.Properties)
		return &sdk.UpsertContactResult{Contact: c, Created: created}, nil
	}
}

// neededProps are the custom properties an upsert may write.
func (s *state) neededProps(ids []ident) []string {
	var out []string
	for n := range customProps {
		out = append(out, n)
	}
	for _, i := range ids {
		if i.prop != propEmail && i.prop != propPhone {
			out = append(out, i.prop)
		}
	}
	return out
}

// resolve finds the contact id for identities: the KV index first (HubSpot's
// search lags its writes by seconds), then search. "" means no contact.
func (s *state) resolve(ctx context.Context, ids []ident, useIndex bool) (string, error) {
	if useIndex {
		for _, i := range ids {
			v, _, err := s.kv.Get(ctx, "contact/"+hashKey(i.key()))
			if err == nil && len(v) > 0 {
				return string(v), nil
			}
			if err != nil && !errors.Is(err, sdk.ErrNotFound) {
				return "", sdk.Retryable(fmt.Errorf("read the identity index from the host KV: %w", err), 0)
			}
		}
	}
	return s.search(ctx, ids)
}

type searchFilter struct {
	PropertyName string   `json:"propertyName"`
	Operator     string   `json:"operator"`
	Value        string   `json:"value,omitempty"`
	Values       []string `json:"values,omitempty"`
}

type filterGroup struct {
	Filters []searchFilter `json:"filters"`
}

type searchRequest struct {
	FilterGroups []filterGroup `json:"filterGroups"`
	Properties   []string      `json:"properties"`
	Limit        int           `json:"limit"`
}

type searchResponse struct {
	Total   int        `json:"total"`
	Results []hsObject `json:"results"`
}

// HubSpot allows 5 filter groups per search (groups are OR'ed).
const maxSearchGroups = 5

// search looks contacts up by every identity at once: one filter group
// per property (OR), IN over its values. Among several matches the best
// evidence wins (channel id, then email, then phone), then the oldest.
func (s *state) search(ctx context.Context, ids []ident) (string, error) {
	byProp := map[string][]string{}
	var props []string
	for _, i := range ids {
		if _, ok := byProp[i.prop]; !ok {
			// A channel property that does not exist yet holds no one;
			// HubSpot would refuse a filter on it.
			if i.prop != propEmail && i.prop != propPhone {
				ok, err := s.props.exists(ctx, i.prop)
				if err != nil {
					return "", err
				}
				if !ok {
					continue
				}
			}
			props = append(props, i.prop)
		}
		byProp[i.prop] = append(byProp[i.prop], i.value)
	}
	if len(props) == 0 {
		return "", nil
	}
	type hit struct {
		id   string
		rank int
	}
	var best *hit
	for start := 0; start < len(props); start += maxSearchGroups {
		chunk := props[start:min(start+maxSearchGroups, len(props))]
		req := searchRequest{Properties: append([]string{"hs_object_id"}, chunk...), Limit: 20}
		for _, prop := range chunk {
			f := searchFilter{PropertyName: prop, Operator: "EQ"}
			if vs := byProp[prop]; len(vs) == 1 {
				f.Value = vs[0]
			} else {
				f.Operator, f.Values = "IN", vs
			}
			req.FilterGroups = append(req.FilterGroups, filterGroup{Filters: []searchFilter{f}})
		}
		var out searchResponse
		if err := s.api.do(ctx, http.MethodPost, "/crm/v3/objects/contacts/search", nil, req, &out); err != nil {
			return "", fmt.Errorf("search contacts: %w", err)
		}
		for _, o := range out.Results {
			pr := o.props()
			rank := 99
			for _, i := range ids {
				if v := pr[i.prop]; v != "" && matchValue(i.prop, v, i.value) && i.rank < rank {
					rank = i.rank
				}
			}
			if best == nil || rank < best.rank || (rank == best.rank && idLess(o.ID, best.id)) {
				best = &hit{id: o.ID, rank: rank}
			}
		}
		if len(out.Results) > 1 {
			s.log.Warn("hubspot: identities match several contacts; using the best match", "matches", len(out.Results), "contact_id", best.id)
		}
	}
	if best == nil {
		return "", nil
	}
	return best.id, nil
}

func matchValue(prop, stored, want string) bool {
	switch prop {
	case propEmail:
		return normEmail(stored) == want
	case propPhone:
		return normPhone(stored) == want
	}
	return strings.EqualFold(strings.TrimSpace(stored), want)
}

func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func (s *state) index(ctx context.Context, ids []ident, contactID string) {
	for _, i := range ids {
		// Best effort: a missing entry costs a search later, not correctness.
		if _, err := s.kv.Put(ctx, "contact/"+hashKey(i.key()), []byte(contactID), indexTTL); err != nil {
			s.log.Warn("hubspot: could not write the identity index", "contact_id", contactID, "error", err)
			return
		}
	}
}

func (s *state) dropIndex(ctx context.Context, ids []ident) {
	for _, i := range ids {
		_ = s.kv.Delete(ctx, "contact/"+hashKey(i.key()))
	}
}

// readProps are the contact properties fetched on every read.
func (s *state) readProps(ctx context.Context) ([]string, error) {
	out := []string{propEmail, propPhone, propFirstName, propLastName, propOwner, "createdate", "lastmodifieddate"}
	for n := range customProps {
		out = append(out, n)
	}
	known, err := s.props.all(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range known {
		if s.channelOf(n) != "" {
			out = append(out, n)
		}
	}
	out = append(out, s.cfg.ReadProperties...)
	return uniqueSorted(out), nil
}

func (s *state) getContact(ctx context.Context, id string) (*hsObject, error) {
	props, err := s.readProps(ctx)
	if err != nil {
		return nil, err
	}
	var o hsObject
	q := url.Values{"properties": {strings.Join(props, ",")}, "archived": {"false"}}
	if err := s.api.do(ctx, http.MethodGet, "/crm/v3/objects/contacts/"+url.PathEscape(id), q, nil, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

type propertiesBody struct {
	Properties   map[string]string `json:"properties"`
	Associations []association     `json:"associations,omitempty"`
}

func (s *state) createContact(ctx context.Context, ct *sdk.Contact, ids []ident) (*hsObject, error) {
	props, err := s.contactChanges(ctx, ct, ids, map[string]string{})
	if err != nil {
		return nil, err
	}
	// HubSpot needs an email, first or last name on create; a chat
	// contact may have none yet, so fall back to what we know. The name
	// is marked as ours, so a real name replaces it later.
	if props[propEmail] == "" && props[propFirstName] == "" {
		name := firstNonEmpty(props[propPhone])
		if name == "" && len(ids) > 0 {
			name = s.channelOf(ids[0].prop) + " " + ids[0].value
		}
		props[propFirstName], props[propName] = name, name
	}
	var o hsObject
	if err := s.api.do(ctx, http.MethodPost, "/crm/v3/objects/contacts", nil, propertiesBody{Properties: props}, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

func (s *state) updateContact(ctx context.Context, id string, ct *sdk.Contact, ids []ident) (*hsObject, error) {
	cctx, unlock, err := s.locks.lock(ctx, "contact:"+id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cur, err := s.getContact(cctx, id)
	if err != nil {
		return nil, err
	}
	changes, err := s.contactChanges(cctx, ct, ids, cur.props())
	if err != nil {
		return nil, err
	}
	if len(changes) == 0 {
		return cur, nil // nothing new: spare the rate budget
	}
	var upd hsObject
	if err := s.api.do(cctx, http.MethodPatch, "/crm/v3/objects/contacts/"+url.PathEscape(id), nil, propertiesBody{Properties: changes}, &upd); err != nil {
		return nil, err
	}
	// PATCH answers with what changed; merge it into what was read.
	for k, v := range changes {
		v := v
		cur.Properties[k] = &v
	}
	if !upd.UpdatedAt.IsZero() {
		cur.UpdatedAt = upd.UpdatedAt
	}
	return cur, nil
}

// contactChanges computes the properties to write over cur:
//   - identity properties (email, phone, channel ids) fill blanks and are
//     never overwritten: HubSpot's email is its dedupe key, and the
//     identity index keeps finding the contact by the other values;
//   - the name is written unless a person edited it in HubSpot;
//   - the score only rises unless ResetScore; the tier follows the score;
//   - lead facts overwrite when known; source channel and campaign are
//     first-touch; tags accumulate; the owner is the hub's latest decision.
func (s *state) contactChanges(ctx context.Context, ct *sdk.Contact, ids []ident, cur map[string]string) (map[string]string, error) {
	ch := map[string]string{}
	set := func(k, v string) {
		if cur[k] != v {
			ch[k] = v
		}
	}
	setIf := func(k, v string) {
		if v = strings.TrimSpace(v); v != "" {
			set(k, v)
		}
	}
	fill := func(k, v string) {
		if v = strings.TrimSpace(v); v != "" && cur[k] == "" {
			ch[k] = v
		}
	}
	for _, i := range ids {
		fill(i.prop, i.value)
	}
	name := strings.TrimSpace(ct.Name)
	for _, id := range ct.Identities {
		name = firstNonEmpty(name, strings.TrimSpace(id.DisplayName))
	}
	if name != "" {
		curName := strings.TrimSpace(cur[propFirstName] + " " + cur[propLastName])
		if curName == "" || curName == cur[propName] {
			if curName != name {
				ch[propFirstName] = name
				if cur[propLastName] != "" {
					ch[propLastName] = ""
				}
			}
			set(propName, name)
		}
	}

	oldScore, hasScore := atoi(cur[propScore])
	switch {
	case ct.ResetScore || !hasScore || ct.Score > oldScore:
		set(propScore, strconv.Itoa(ct.Score))
		setIf(propTier, ct.Tier)
	case ct.Score == oldScore:
		setIf(propTier, ct.Tier)
	}

	f := ct.Facts
	setIf(propIntent, f.Intent)
	setIf(propNeed, f.Need)
	setIf(propBudget, f.Budget)
	setIf(propTimeline, f.Timeline)
	setIf(propAction, f.Action)
	if f.DecisionMakerKnown || f.DecisionMaker {
		set(propDecisionMaker, strconv.FormatBool(f.DecisionMaker))
	}
	if f.Confidence > 0 {
		set(propConfidence, strconv.FormatFloat(f.Confidence, 'f', -1, 64))
	}
	if f.Estimate != 0 {
		set(propEstimate, strconv.Itoa(f.Estimate))
	}
	if len(f.Extra) > 0 {
		extra := map[string]string{}
		_ = json.Unmarshal([]byte(cur[propExtra]), &extra) // a hand-edited value is replaced
		for k, v := range f.Extra {
			extra[k] = v
		}
		b, _ := json.Marshal(extra) // sorted keys: stable, so unchanged facts write nothing
		set(propExtra, string(b))
	}
	fill(propSource, ct.SourceChannel)
	fill(propCampaign, ct.Campaign)
	if len(ct.Tags) > 0 {
		set(propTags, strings.Join(mergeTags(splitTags(cur[propTags]), ct.Tags), ";"))
	}
	if ct.OwnerID != "" {
		ownerID, err := s.owners.toHubSpot(ctx, ct.OwnerID)
		if err != nil {
			return nil, err
		}
		if ownerID != "" {
			set(propOwner, ownerID)
		} else {
			s.log.Debug("hubspot: agent maps to no HubSpot owner; kept in switchboard_owner_agent only", "agent", ct.OwnerID)
		}
		set(propOwnerAgent, ct.OwnerID)
	}
	for k, v := range ct.Properties {
		set(k, v)
	}
	return ch, nil
}

func atoi(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64) // HubSpot may render numbers as "60.0"
	return int(f), err == nil
}

func splitTags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ";") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func mergeTags(old, add []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range append(append([]string(nil), old...), add...) {
		if t = strings.TrimSpace(t); t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// toContact converts a HubSpot contact. extra names request properties to
// echo back besides read_properties.
func (s *state) toContact(ctx context.Context, o *hsObject, extra map[string]string) sdk.Contact {
	pr := o.props()
	c := sdk.Contact{
		ID:            o.ID,
		Name:          strings.TrimSpace(pr[propFirstName] + " " + pr[propLastName]),
		Phone:         pr[propPhone],
		Email:         pr[propEmail],
		Tier:          pr[propTier],
		SourceChannel: pr[propSource],
		Campaign:      pr[propCampaign],
		Tags:          splitTags(pr[propTags]),
		URL:           s.recordURL("0-1", o.ID),
		CreatedAt:     o.CreatedAt,
		UpdatedAt:     o.UpdatedAt,
	}
	c.Score, _ = atoi(pr[propScore])
	c.Facts = sdk.LeadFacts{Intent: pr[propIntent], Need: pr[propNeed], Budget: pr[propBudget], Timeline: pr[propTimeline],
		Action: pr[propAction]}
	if v, ok := pr[propDecisionMaker]; ok {
		c.Facts.DecisionMakerKnown, c.Facts.DecisionMaker = true, v == "true"
	}
	c.Facts.Confidence, _ = strconv.ParseFloat(pr[propConfidence], 64)
	c.Facts.Estimate, _ = atoi(pr[propEstimate])
	if v := pr[propExtra]; v != "" {
		_ = json.Unmarshal([]byte(v), &c.Facts.Extra)
	}
	// A person may reassign the contact in HubSpot: the owner there wins,
	// mapped back to an agent when it can be. While it is still the owner
	// this plugin wrote, the agent id written with it is the answer.
	agent, owner := pr[propOwnerAgent], pr[propOwner]
	switch {
	case owner == "":
		c.OwnerID = agent
	case agent != "" && s.ownerOf(ctx, agent) == owner:
		c.OwnerID = agent
	default:
		c.OwnerID = firstNonEmpty(s.owners.toAgent(ctx, owner), owner)
	}
	keys := make([]string, 0, len(pr))
	for k := range pr {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ch := s.channelOf(k); ch != "" {
			c.Identities = append(c.Identities, sdk.Identity{Channel: ch, UserID: pr[k], DisplayName: c.Name})
		}
	}
	for _, k := range append(append([]string(nil), s.cfg.ReadProperties...), mapKeys(extra)...) {
		if v, ok := pr[k]; ok {
			if c.Properties == nil {
				c.Properties = map[string]string{}
			}
			c.Properties[k] = v
		}
	}
	return c
}

// ownerOf is the HubSpot owner of agent, "" if unknown or on error (reads
// fall back to the reverse mapping).
func (s *state) ownerOf(ctx context.Context, agent string) string {
	id, err := s.owners.toHubSpot(ctx, agent)
	if err != nil {
		return ""
	}
	return id
}

func mapKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// GetContact implements sdk.CRM: by id, or by identity (index, then search).
func (p *CRM) GetContact(ctx context.Context, id string, identity *sdk.Identity) (*sdk.Contact, error) {
	s, err := p.state()
	if err != nil {
		return nil, err
	}
	if id == "" {
		if identity == nil || identity.IsZero() {
			return nil, sdk.Invalid(errors.New("hubspot get contact: neither an id nor an identity"))
		}
		ids := s.identities(&sdk.Contact{Identities: []sdk.Identity{*identity}})
		for attempt := 0; attempt < 2; attempt++ {
			if id, err = s.resolve(ctx, ids, attempt == 0); err != nil {
				return nil, fmt.Errorf("hubspot get contact: %w", err)
			}
			if id == "" {
				return nil, sdk.NotFound(errors.New("hubspot: no contact with this identity"))
			}
			o, err := s.getContact(ctx, id)
			if sdk.CodeOf(err) == sdk.CodeNotFound && attempt == 0 {
				s.dropIndex(ctx, ids) // stale index entry: search instead
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("hubspot get contact %s: %w", id, err)
			}
			c := s.toContact(ctx, o, nil)
			return &c, nil
		}
		return nil, sdk.NotFound(errors.New("hubspot: no contact with this identity"))
	}
	o, err := s.getContact(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("hubspot get contact %s: %w", id, err)
	}
	c := s.toContact(ctx, o, nil)
	return &c, nil
}
