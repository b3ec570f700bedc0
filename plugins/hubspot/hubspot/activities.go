package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// HUBSPOT_DEFINED association type ids, directional from the record being
// created (reference §4).
const (
	assocNoteToContact = 202
	assocNoteToDeal    = 214
	assocTaskToContact = 204
	assocTaskToDeal    = 216
	assocDealToContact = 3
)

type association struct {
	To    assocTarget `json:"to"`
	Types []assocType `json:"types"`
}

type assocTarget struct {
	ID string `json:"id"`
}

type assocType struct {
	Category string `json:"associationCategory"`
	TypeID   int    `json:"associationTypeId"`
}

func assoc(id string, typeID int) association {
	return association{To: assocTarget{ID: id}, Types: []assocType{{Category: "HUBSPOT_DEFINED", TypeID: typeID}}}
}

// idemTTL is how long a write's idempotency key keeps answering with the
// record it created; the hub retries within hours, not weeks.
const idemTTL = 30 * 24 * time.Hour

func tsString(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// idemGet reads the record an earlier call with key created.
func (s *state) idemGet(ctx context.Context, kind, key string, out any) (bool, error) {
	if key == "" {
		return false, nil
	}
	v, _, err := s.kv.Get(ctx, "idem/"+kind+"/"+hashKey(key))
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		return false, nil
	case err != nil:
		return false, sdk.Retryable(fmt.Errorf("read idempotency key from the host KV: %w", err), 0)
	}
	if err := json.Unmarshal(v, out); err != nil {
		return false, nil // unreadable: act as new rather than fail forever
	}
	return true, nil
}

// idemPut remembers the record created for key. If it fails after the
// record was created, a retry would create a second one; the error is
// logged, as there is nothing better to do than to report it.
func (s *state) idemPut(ctx context.Context, kind, key string, v any) {
	if key == "" {
		return
	}
	b, _ := json.Marshal(v)
	if _, err := s.kv.Put(ctx, "idem/"+kind+"/"+hashKey(key), b, idemTTL); err != nil {
		s.log.Error("hubspot: could not record an idempotency key; a retry may duplicate the record", "kind", kind, "error", err)
	}
}

// once runs create at most once per (kind, key): concurrent calls with the
// same key wait for the first and get its record.
func once[T any](ctx context.Context, s *state, kind, key string, lockKeys []string, create func(ctx context.Context) (*T, error)) (*T, error) {
	var prev T
	if ok, err := s.idemGet(ctx, kind, key, &prev); err != nil {
		return nil, err
	} else if ok {
		return &prev, nil
	}
	if key != "" {
		lockKeys = append(lockKeys, "idem:"+kind+":"+key)
	}
	lctx, unlock, err := s.locks.lock(ctx, lockKeys...)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if ok, err := s.idemGet(lctx, kind, key, &prev); err != nil {
		return nil, err
	} else if ok {
		return &prev, nil
	}
	res, err := create(lctx)
	if err != nil {
		return nil, err
	}
	s.idemPut(lctx, kind, key, res)
	return res, nil
}

// noteHTML turns plain text into the rich text HubSpot renders in
// hs_note_body, keeping line breaks.
func noteHTML(body string) string {
	return strings.ReplaceAll(html.EscapeString(body), "\n", "<br>")
}

// AddNote implements sdk.CRM: a note associated to the contact (202) and
// the deal (214).
func (p *CRM) AddNote(ctx context.Context, idempotencyKey string, note *sdk.Note) (*sdk.Note, error) {
	s, err := p.state()
	if err != nil {
		return nil, err
	}
	if note == nil || note.ContactID == "" {
		return nil, sdk.Invalid(errors.New("hubspot add note: the note needs a contact id"))
	}
	n, err := once(ctx, s, "note", idempotencyKey, nil, func(ctx context.Context) (*sdk.Note, error) {
		at := note.CreatedAt
		if at.IsZero() {
			at = s.clock.Now()
		}
		props := map[string]string{"hs_note_body": noteHTML(note.Body), "hs_timestamp": tsString(at)}
		owner, err := s.owners.toHubSpot(ctx, note.Author)
		if err != nil {
			return nil, err
		}
		if owner != "" {
			props[propOwner] = owner
		}
		links := []association{assoc(note.ContactID, assocNoteToContact)}
		if note.DealID != "" {
			links = append(links, assoc(note.DealID, assocNoteToDeal))
		}
		var o hsObject
		if err := s.api.do(ctx, http.MethodPost, "/crm/v3/objects/notes", nil, propertiesBody{Properties: props, Associations: links}, &o); err != nil {
			return nil, err
		}
		out := *note
		out.ID, out.CreatedAt = o.ID, at.UTC()
		return &out, nil
	})
	if err != nil {
		return nil, fmt.Errorf("hubspot add note: %w", err)
	}
	return n, nil
}

var (
	taskStatus = map[string]string{"": "NOT_STARTED", "open": "NOT_STARTED", "not_started": "NOT_STARTED", "todo": "NOT_STARTED",
		"in_progress": "IN_PROGRESS", "waiting": "WAITING", "deferred": "DEFERRED", "done": "COMPLETED", "completed": "COMPLETED"}
	taskPriority = map[string]string{"": "", "none": "NONE", "low": "LOW", "medium": "MEDIUM", "normal": "MEDIUM", "high": "HIGH", "urgent": "HIGH"}
	taskType     = map[string]string{"": "TODO", "todo": "TODO", "call": "CALL", "email": "EMAIL", "linkedin": "LINKED_IN"}
)

func mapEnum(field, v string, m map[string]string) (string, error) {
	out, ok := m[strings.ToLower(strings.TrimSpace(v))]
	if !ok {
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "" {
				keys = append(keys, k)
			}
		}
		return "", sdk.Invalid(fmt.Errorf("hubspot: task %s %q: want one of %s", field, v, strings.Join(uniqueSorted(keys), ", ")))
	}
	return out, nil
}

// CreateTask implements sdk.CRM: a task associated to the contact (204) and
// the deal (216), due at hs_timestamp.
func (p *CRM) CreateTask(ctx context.Context, idempotencyKey string, task *sdk.Task) (*sdk.Task, error) {
	s, err := p.state()
	if err != nil {
		return nil, err
	}
	if task == nil || task.ContactID == "" {
		return nil, sdk.Invalid(errors.New("hubspot create task: the task needs a contact id"))
	}
	status, err := mapEnum("status", task.Status, taskStatus)
	if err != nil {
		return nil, err
	}
	priority, err := mapEnum("priority", task.Priority, taskPriority)
	if err != nil {
		return nil, err
	}
	typ, err := mapEnum("type", task.Type, taskType)
	if err != nil {
		return nil, err
	}
	t, err := once(ctx, s, "task", idempotencyKey, nil, func(ctx context.Context) (*sdk.Task, error) {
		due := task.DueAt
		if due.IsZero() {
			due = s.clock.Now()
		}
		props := map[string]string{"hs_task_subject": task.Title, "hs_task_body": task.Body, "hs_timestamp": tsString(due),
			"hs_task_status": status, "hs_task_type": typ}
		if priority != "" {
			props["hs_task_priority"] = priority
		}
		owner, err := s.owners.toHubSpot(ctx, task.OwnerID)
		if err != nil {
			return nil, err
		}
		if owner != "" {
			props[propOwner] = owner
		} else if task.OwnerID != "" {
			s.log.Warn("hubspot: task owner maps to no HubSpot owner; the task is unassigned", "agent", task.OwnerID)
		}
		links := []association{assoc(task.ContactID, assocTaskToContact)}
		if task.DealID != "" {
			links = append(links, assoc(task.DealID, assocTaskToDeal))
		}
		var o hsObject
		if err := s.api.do(ctx, http.MethodPost, "/crm/v3/objects/tasks", nil, propertiesBody{Properties: props, Associations: links}, &o); err != nil {
			return nil, err
		}
		out := *task
		out.ID, out.DueAt = o.ID, due.UTC()
		if out.Status == "" {
			out.Status = "open"
		}
		return &out, nil
	})
	if err != nil {
		return nil, fmt.Errorf("hubspot create task: %w", err)
	}
	return t, nil
}

func mapOr(m map[string]string, k, def string) string {
	if v, ok := m[k]; ok {
		return v
	}
	if k == "" {
		return def
	}
	return k
}

// UpsertDeal implements sdk.CRM. A deal is the contact's deal in one
// pipeline: without an id, the deal this plugin made for the contact in
// that pipeline is moved (its id is kept in the host KV), or a new one is
// created and associated to the contact (3). Pipeline and stage names go
// through the pipelines/stages config maps; the returned deal keeps the
// hub's names.
func (p *CRM) UpsertDeal(ctx context.Context, idempotencyKey string, deal *sdk.Deal) (*sdk.Deal, error) {
	s, err := p.state()
	if err != nil {
		return nil, err
	}
	if deal == nil || (deal.ID == "" && deal.ContactID == "") {
		return nil, sdk.Invalid(errors.New("hubspot upsert deal: the deal needs an id or a contact id"))
	}
	pipeline := mapOr(s.cfg.Pipelines, deal.Pipeline, s.cfg.Pipeline)
	stage := mapOr(s.cfg.Stages, deal.Stage, "")
	var lockKeys []string
	if deal.ID != "" {
		lockKeys = append(lockKeys, "deal:"+deal.ID)
	} else {
		lockKeys = append(lockKeys, "contact-deal:"+deal.ContactID+":"+pipeline)
	}
	d, err := once(ctx, s, "deal", idempotencyKey, lockKeys, func(ctx context.Context) (*sdk.Deal, error) {
		props := map[string]string{"pipeline": pipeline}
		if stage != "" {
			props["dealstage"] = stage
		}
		if deal.Name != "" {
			props["dealname"] = deal.Name
		}
		if deal.Amount > 0 {
			props["amount"] = strconv.FormatFloat(deal.Amount, 'f', -1, 64)
		}
		if deal.Currency != "" {
			props["deal_currency_code"] = strings.ToUpper(deal.Currency)
		}
		owner, err := s.owners.toHubSpot(ctx, deal.OwnerID)
		if err != nil {
			return nil, err
		}
		if owner != "" {
			props[propOwner] = owner
		}
		for k, v := range deal.Properties {
			props[k] = v
		}
		mapKey := ""
		if deal.ContactID != "" {
			mapKey = "deal/" + hashKey(deal.ContactID+"/"+pipeline)
		}
		id := deal.ID
		if id == "" {
			v, _, err := s.kv.Get(ctx, mapKey)
			if err != nil && !errors.Is(err, sdk.ErrNotFound) {
				return nil, sdk.Retryable(fmt.Errorf("read the contact's deal from the host KV: %w", err), 0)
			}
			id = string(v)
		}
		var o hsObject
		if id != "" {
			err := s.api.do(ctx, http.MethodPatch, "/crm/v3/objects/deals/"+url.PathEscape(id), nil, propertiesBody{Properties: props}, &o)
			switch {
			case err == nil:
			case sdk.CodeOf(err) == sdk.CodeNotFound && deal.ID == "":
				id = "" // the remembered deal was deleted in HubSpot: make a new one
			default:
				return nil, err
			}
		}
		if id == "" {
			if props["dealname"] == "" {
				props["dealname"] = "Switchboard lead " + deal.ContactID
			}
			body := propertiesBody{Properties: props, Associations: []association{assoc(deal.ContactID, assocDealToContact)}}
			if err := s.api.do(ctx, http.MethodPost, "/crm/v3/objects/deals", nil, body, &o); err != nil {
				return nil, err
			}
		}
		if mapKey != "" {
			if _, err := s.kv.Put(ctx, mapKey, []byte(o.ID), 0); err != nil {
				s.log.Warn("hubspot: could not remember the contact's deal", "deal_id", o.ID, "error", err)
			}
		}
		out := *deal
		out.ID, out.URL = o.ID, s.recordURL("0-3", o.ID)
		if out.Pipeline == "" {
			out.Pipeline = pipeline
		}
		return &out, nil
	})
	if err != nil {
		return nil, fmt.Errorf("hubspot upsert deal: %w", err)
	}
	return d, nil
}
