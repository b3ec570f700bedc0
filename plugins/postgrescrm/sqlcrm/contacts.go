package sqlcrm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// contactInput is an upsert request, validated and normalized.
type contactInput struct {
	id         string
	keys       []identityKey
	phone      string // normalized Contact.Phone: replaces the stored one
	email      string
	fillPhone  string // a phone or email from an identity: fills an empty field
	fillEmail  string
	fillName   string // a display name: fills an empty name
	c          sdk.Contact
	extra      map[string]string
	properties map[string]string
	tags       []string
}

func (s *store) prepareContact(c sdk.Contact) (*contactInput, error) {
	in := &contactInput{id: strings.TrimSpace(c.ID), c: c, extra: c.Facts.Extra, properties: c.Properties}
	ks := keySet{cc: s.cfg.DefaultCountryCode}
	var err error
	if in.phone, err = ks.addPhone(c.Phone); err != nil {
		return nil, err
	}
	if in.email, err = ks.addEmail(c.Email); err != nil {
		return nil, err
	}
	for _, id := range c.Identities {
		if err := ks.addIdentity(id); err != nil {
			return nil, err
		}
	}
	in.keys = ks.keys
	for _, k := range in.keys {
		switch {
		case k.Channel == chanPhone && in.fillPhone == "":
			in.fillPhone = k.Value
		case k.Channel == chanEmail && in.fillEmail == "":
			in.fillEmail = k.Value
		case k.DisplayName != "" && in.fillName == "":
			in.fillName = k.DisplayName
		}
	}
	if in.id == "" && len(in.keys) == 0 {
		return nil, errors.New("a contact needs an id or at least one identity (channel user id, phone or email)")
	}
	for _, t := range c.Tags {
		if t = strings.TrimSpace(t); t != "" && !contains(in.tags, t) {
			in.tags = append(in.tags, t)
		}
	}
	return in, nil
}

func (s *store) upsertContact(ctx context.Context, req *sdk.UpsertContactRequest) (*sdk.UpsertContactResult, error) {
	in, err := s.prepareContact(req.Contact)
	if err != nil {
		return nil, sdk.Invalid(fmt.Errorf("upsert contact: %w", err))
	}
	locks := s.idemLock(kindContact, req.IdempotencyKey)
	for _, k := range in.keys {
		locks = append(locks, lockKey(s.ns, "identity", k.Channel, k.Value))
	}
	var out *sdk.UpsertContactResult
	err = s.db.write(ctx, func(q querier) error {
		// Upserts sharing an identity queue here; on SQLite the write lock
		// already excludes everyone else.
		if err := s.db.lockKeys(ctx, q, locks); err != nil {
			return err
		}
		if req.IdempotencyKey != "" {
			rec, created, found, err := s.idemLookup(ctx, q, kindContact, req.IdempotencyKey)
			if err != nil {
				return err
			}
			if found {
				id, err := s.resolveContactID(ctx, q, rec)
				if err != nil {
					return fmt.Errorf("replay: %w", err)
				}
				c, err := s.loadContact(ctx, q, id)
				if err != nil {
					return err
				}
				out = &sdk.UpsertContactResult{Contact: *c, Created: created}
				return nil
			}
		}
		refs, err := s.lockMatching(ctx, q, in)
		if err != nil {
			return err
		}
		now := s.now()
		var (
			target  string
			created bool
			cur     contactRow
		)
		if len(refs) == 0 {
			if target, err = newID(); err != nil {
				return err
			}
			created = true
			if _, err := q.exec(ctx, `INSERT INTO contacts (id, created_at, updated_at) VALUES ($1, $2, $2)`, target, now); err != nil {
				return fmt.Errorf("insert contact: %w", err)
			}
			cur = contactRow{ID: target, CreatedAt: now}
		} else {
			// The oldest contact survives: its id is the one already
			// handed out in links, notes and assignments.
			target = refs[0].ID
			for _, r := range refs[1:] {
				if err := s.mergeContact(ctx, q, target, r.ID, now); err != nil {
					return fmt.Errorf("merge contacts: %w", err)
				}
			}
			if cur, err = s.loadContactRow(ctx, q, target); err != nil {
				return err
			}
		}
		for _, k := range in.keys {
			if _, err := q.exec(ctx, `INSERT INTO identities (channel, user_id, contact_id, display_name, instance, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
ON CONFLICT (channel, user_id) DO UPDATE SET
	contact_id = excluded.contact_id,
	display_name = CASE WHEN excluded.display_name = '' THEN identities.display_name ELSE excluded.display_name END,
	instance = CASE WHEN excluded.instance = '' THEN identities.instance ELSE excluded.instance END,
	updated_at = excluded.updated_at`,
				k.Channel, k.Value, target, k.DisplayName, k.Instance, now); err != nil {
				return fmt.Errorf("upsert identity: %w", err)
			}
		}
		if err := s.patchContact(ctx, q, cur, in, now); err != nil {
			return fmt.Errorf("update contact: %w", err)
		}
		if err := s.idemRecord(ctx, q, kindContact, req.IdempotencyKey, target, created, now); err != nil {
			return fmt.Errorf("record idempotency key: %w", err)
		}
		c, err := s.loadContact(ctx, q, target)
		if err != nil {
			return err
		}
		out = &sdk.UpsertContactResult{Contact: *c, Created: created}
		return nil
	})
	if err != nil {
		return nil, s.db.classify("upsert contact", err)
	}
	return out, nil
}

// orNil turns "no value" into SQL NULL, which the patch keeps as "leave
// the stored value alone" through COALESCE.
func orNil[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

// patchContact applies an upsert to the locked row cur. Fields the request
// leaves empty keep their stored value. The score only rises unless
// ResetScore, and the tier follows the score: a lower score does not bring
// a lower tier with it. The source channel and campaign are first-touch
// attribution: set once, never overwritten.
func (s *store) patchContact(ctx context.Context, q querier, cur contactRow, in *contactInput, now time.Time) error {
	c := in.c
	phone, email, name := in.phone, in.email, strings.TrimSpace(c.Name)
	if phone == "" && cur.Phone == "" {
		phone = in.fillPhone
	}
	if email == "" && cur.Email == "" {
		email = in.fillEmail
	}
	if name == "" && cur.Name == "" {
		name = in.fillName
	}
	var dm any
	if c.Facts.DecisionMakerKnown || c.Facts.DecisionMaker {
		dm = c.Facts.DecisionMaker
	}
	extra := map[string]string{}
	if err := decodeJSON(cur.Extra, &extra); err != nil {
		return err
	}
	for k, v := range in.extra {
		extra[k] = v
	}
	props := map[string]string{}
	if err := decodeJSON(cur.Properties, &props); err != nil {
		return err
	}
	for k, v := range in.properties {
		props[k] = v
	}
	var tags []string
	if err := decodeJSON(cur.Tags, &tags); err != nil {
		return err
	}
	for _, t := range in.tags {
		if !contains(tags, t) {
			tags = append(tags, t)
		}
	}
	if tags == nil {
		tags = []string{}
	}
	_, err := q.exec(ctx, `UPDATE contacts SET
	name = COALESCE($2, name),
	phone = COALESCE($3, phone),
	email = COALESCE($4, email),
	owner_id = COALESCE($5, owner_id),
	tier = CASE WHEN CAST($8 AS TEXT) IS NULL THEN tier WHEN $7 OR $6 >= score THEN $8 ELSE tier END,
	score = CASE WHEN $7 THEN $6 ELSE `+s.d.greatest+`(score, $6) END,
	source_channel = CASE WHEN source_channel = '' THEN COALESCE($9, '') ELSE source_channel END,
	campaign = CASE WHEN campaign = '' THEN COALESCE($10, '') ELSE campaign END,
	intent = COALESCE($11, intent),
	need = COALESCE($12, need),
	budget = COALESCE($13, budget),
	timeline = COALESCE($14, timeline),
	action = COALESCE($15, action),
	decision_maker = COALESCE($16, decision_maker),
	confidence = COALESCE($17, confidence),
	estimate = COALESCE($18, estimate),
	extra = $19,
	tags = $20,
	properties = $21,
	updated_at = $22
WHERE id = $1`,
		cur.ID, orNil(name), orNil(phone), orNil(email), orNil(strings.TrimSpace(c.OwnerID)),
		c.Score, c.ResetScore, orNil(strings.TrimSpace(c.Tier)),
		orNil(strings.TrimSpace(c.SourceChannel)), orNil(strings.TrimSpace(c.Campaign)),
		orNil(c.Facts.Intent), orNil(c.Facts.Need), orNil(c.Facts.Budget), orNil(c.Facts.Timeline), orNil(c.Facts.Action),
		dm, orNil(c.Facts.Confidence), orNil(c.Facts.Estimate),
		encodeJSON(extra), encodeJSON(tags), encodeJSON(props), now)
	return err
}

// mergeContact folds loser into winner; both rows are locked. Everything
// attached to the loser moves over, its id keeps resolving through
// contact_merges, and where both had an open deal in one pipeline the
// winner's stays open and the loser's is closed as merged into it.
func (s *store) mergeContact(ctx context.Context, q querier, winner, loser string, now time.Time) error {
	w, err := s.loadContactRow(ctx, q, winner)
	if err != nil {
		return err
	}
	l, err := s.loadContactRow(ctx, q, loser)
	if err != nil {
		return err
	}
	rows, err := q.query(ctx, `SELECT l.id, w.id FROM deals l
JOIN deals w ON w.contact_id = $1 AND w.pipeline = l.pipeline AND w.is_open
WHERE l.contact_id = $2 AND l.is_open`, winner, loser)
	if err != nil {
		return err
	}
	var pairs [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			rows.Close()
			return err
		}
		pairs = append(pairs, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range pairs {
		closed, survivor := p[0], p[1]
		if _, err := q.exec(ctx, `UPDATE deals SET is_open = $2, merged_into = $3, updated_at = $4 WHERE id = $1`,
			closed, false, survivor, now); err != nil {
			return err
		}
		for _, stmt := range []string{
			`UPDATE deals SET merged_into = $2 WHERE merged_into = $1`,
			`UPDATE notes SET deal_id = $2 WHERE deal_id = $1`,
			`UPDATE tasks SET deal_id = $2 WHERE deal_id = $1`,
			`UPDATE idempotency SET record_id = $2 WHERE kind = 'deal' AND record_id = $1`,
		} {
			if _, err := q.exec(ctx, stmt, closed, survivor); err != nil {
				return err
			}
		}
	}
	for _, stmt := range []string{
		`UPDATE identities SET contact_id = $1 WHERE contact_id = $2`,
		`UPDATE deals SET contact_id = $1 WHERE contact_id = $2`,
		`UPDATE notes SET contact_id = $1 WHERE contact_id = $2`,
		`UPDATE tasks SET contact_id = $1 WHERE contact_id = $2`,
		`UPDATE idempotency SET record_id = $1 WHERE kind = 'contact' AND record_id = $2`,
		`UPDATE contact_merges SET into_id = $1 WHERE into_id = $2`,
	} {
		if _, err := q.exec(ctx, stmt, winner, loser); err != nil {
			return err
		}
	}
	if _, err := q.exec(ctx, `INSERT INTO contact_merges (old_id, into_id, merged_at) VALUES ($1, $2, $3)`, loser, winner, now); err != nil {
		return err
	}
	m, err := mergeRows(w, l)
	if err != nil {
		return err
	}
	m.UpdatedAt = now
	if err := s.writeContactRow(ctx, q, m); err != nil {
		return err
	}
	if _, err := q.exec(ctx, `DELETE FROM contacts WHERE id = $1`, loser); err != nil {
		return err
	}
	s.log.Info("contacts merged", "contact_id", winner, "merged_id", loser, "deals_closed_as_merged", len(pairs))
	return nil
}

// mergeRows keeps the winner's values and fills its gaps from the loser;
// the score is the higher one, with its tier.
func mergeRows(w, l contactRow) (contactRow, error) {
	fill := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&w.Name, l.Name}, {&w.Phone, l.Phone}, {&w.Email, l.Email}, {&w.OwnerID, l.OwnerID},
		{&w.SourceChannel, l.SourceChannel}, {&w.Campaign, l.Campaign}, {&w.Intent, l.Intent}, {&w.Need, l.Need},
		{&w.Budget, l.Budget}, {&w.Timeline, l.Timeline}, {&w.Action, l.Action},
	} {
		fill(f.dst, f.src)
	}
	if l.Score > w.Score {
		w.Score = l.Score
		if l.Tier != "" {
			w.Tier = l.Tier
		}
	}
	fill(&w.Tier, l.Tier)
	if !w.DecisionMaker.Valid {
		w.DecisionMaker = l.DecisionMaker
	}
	if w.Confidence == 0 {
		w.Confidence = l.Confidence
	}
	if w.Estimate == 0 {
		w.Estimate = l.Estimate
	}
	var err error
	if w.Extra, err = mergeMaps(l.Extra, w.Extra); err != nil {
		return w, err
	}
	if w.Properties, err = mergeMaps(l.Properties, w.Properties); err != nil {
		return w, err
	}
	var wt, lt []string
	if err := decodeJSON(w.Tags, &wt); err != nil {
		return w, err
	}
	if err := decodeJSON(l.Tags, &lt); err != nil {
		return w, err
	}
	for _, t := range lt {
		if !contains(wt, t) {
			wt = append(wt, t)
		}
	}
	if wt == nil {
		wt = []string{}
	}
	w.Tags = encodeJSON(wt)
	return w, nil
}

// mergeMaps returns base overlaid with top, both JSON objects of strings.
func mergeMaps(base, top string) (string, error) {
	m := map[string]string{}
	if err := decodeJSON(base, &m); err != nil {
		return "", err
	}
	var t map[string]string
	if err := decodeJSON(top, &t); err != nil {
		return "", err
	}
	for k, v := range t {
		m[k] = v
	}
	return encodeJSON(m), nil
}

func (s *store) getContact(ctx context.Context, id string, ident *sdk.Identity) (*sdk.Contact, error) {
	id = strings.TrimSpace(id)
	var keys []identityKey
	if id == "" {
		if ident == nil || ident.IsZero() {
			return nil, sdk.Invalid(errors.New("get contact: give an id or an identity"))
		}
		ks := keySet{cc: s.cfg.DefaultCountryCode}
		if err := ks.addIdentity(*ident); err != nil {
			return nil, sdk.Invalid(fmt.Errorf("get contact: %w", err))
		}
		keys = ks.keys
	}
	var out *sdk.Contact
	err := s.db.read(ctx, func(q querier) error {
		found := ""
		if id != "" {
			r, err := s.resolveContactID(ctx, q, id)
			if errors.Is(err, errNoRows) {
				return sdk.NotFound(fmt.Errorf("contact %q not found", id))
			}
			if err != nil {
				return err
			}
			found = r
		} else {
			// The channel user id is the most specific key, then phone,
			// then email (addIdentity's order).
			for _, k := range keys {
				err := q.queryRow(ctx, `SELECT contact_id FROM identities WHERE channel = $1 AND user_id = $2`, k.Channel, k.Value).Scan(&found)
				if err == nil {
					break
				}
				if !errors.Is(err, errNoRows) {
					return err
				}
			}
			if found == "" {
				return sdk.NotFound(errors.New("no contact has this identity"))
			}
		}
		c, err := s.loadContact(ctx, q, found)
		if err != nil {
			return err
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, s.db.classify("get contact", err)
	}
	return out, nil
}
