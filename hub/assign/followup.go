package assign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/rules"
)

// TimerFollowup is the timer kind the pipeline schedules the rules'
// follow-ups with (payload pipeline.FollowupTimer).
const TimerFollowup = "followup"

// onFollowup runs a follow-up when it is due: it is dropped when its
// cancel_when holds at that moment (the agent replied, the customer paid)
// or when the rules no longer have it; otherwise its action runs once
// (the key comes from the timer, so a retry repeats nothing).
func (a *Assigner) onFollowup(ctx context.Context, raw json.RawMessage) error {
	var ft pipeline.FollowupTimer
	if json.Unmarshal(raw, &ft) != nil || ft.Conv == "" {
		return nil
	}
	f := ft.Followup
	pc := a.pconv(ctx, ft.Conv)
	if pc == nil {
		return nil
	}
	rs, err := a.rules()
	if err != nil {
		return err
	}
	hist, err := a.o.Pipeline.History(ctx, ft.Conv)
	if err != nil {
		return err
	}
	in := pipeline.RulesInput(pc, hist, a.now())
	if !f.At.IsZero() {
		in.Now = f.At
	}
	cancelled, err := rs.FollowupCancelled(f.Name, in)
	switch {
	case errors.Is(err, rules.ErrUnknownFollowup):
		a.m.Followups.WithLabelValues(f.Action, "unknown").Inc()
		a.audit(ctx, pipeline.AuditRecord{Kind: "followup_dropped", Conv: ft.Conv, Detail: fmt.Sprintf("followup %q is no longer in the rules", f.Name)})
		return nil
	case err != nil:
		// A condition that fails at run time does not cancel: doing the
		// follow-up is safer than silently losing it.
		a.log.Warn("followup cancel_when failed; running it", "followup", f.Name, "conv", ft.Conv, "err", err)
	case cancelled:
		a.m.Followups.WithLabelValues(f.Action, "cancelled").Inc()
		a.audit(ctx, pipeline.AuditRecord{Kind: "followup_cancelled", Conv: ft.Conv, Detail: fmt.Sprintf("followup %q: %s", f.Name, f.CancelWhen)})
		return nil
	}
	key := "fu:" + ft.Conv + ":" + f.Name + ":" + ft.Inbound
	if done, err := a.effectDone(ctx, key); err != nil || done {
		return err
	}
	target, err := a.runFollowup(ctx, rs, pc, f, key)
	if err != nil {
		if sdk.IsRetryable(err) {
			a.m.Followups.WithLabelValues(f.Action, "retry").Inc()
			return err // the timer fires again after its claim
		}
		a.m.Followups.WithLabelValues(f.Action, "failed").Inc()
		a.audit(ctx, pipeline.AuditRecord{Kind: "followup_failed", Conv: ft.Conv, Key: key, Detail: fmt.Sprintf("followup %q (%s): %v", f.Name, f.Action, err)})
		return nil
	}
	_ = a.markEffect(ctx, key, target)
	a.m.Followups.WithLabelValues(f.Action, "done").Inc()
	a.audit(ctx, pipeline.AuditRecord{Kind: "followup", Conv: ft.Conv, Key: key, Target: target, Detail: fmt.Sprintf("followup %q: %s", f.Name, f.Action)})
	return nil
}

func (a *Assigner) runFollowup(ctx context.Context, rs *rules.Ruleset, pc *pipeline.Conversation, f rules.Followup, key string) (string, error) {
	p := f.Params
	switch f.Action {
	case "task":
		crm, ok := a.crm()
		if !ok || pc.ContactID == "" {
			return "", sdk.Permanent(errors.New("no CRM contact to attach the task to"))
		}
		due := a.now()
		if d, err := time.ParseDuration(p["due"]); err == nil {
			due = due.Add(d)
		}
		t, err := crm.CreateTask(ctx, key, &sdk.Task{ContactID: pc.ContactID, DealID: pc.DealID,
			OwnerID: crmOwner(rs, a.personFor(rs, pc, firstNonEmpty(p["assignee"], "assignee"))),
			Title:   firstNonEmpty(p["title"], f.Name), Body: firstNonEmpty(p["body"], render(f.Name, a.summarize(ctx, pc.ID), pc.ID)),
			Type: firstNonEmpty(p["type"], "todo"), Priority: p["priority"], DueAt: due})
		if err != nil {
			return "", err
		}
		return t.ID, nil
	case "note":
		crm, ok := a.crm()
		if !ok || pc.ContactID == "" {
			return "", sdk.Permanent(errors.New("no CRM contact to attach the note to"))
		}
		n, err := crm.AddNote(ctx, key, &sdk.Note{ContactID: pc.ContactID, DealID: pc.DealID, Author: "switchboard",
			Body: firstNonEmpty(p["text"], f.Name)})
		if err != nil {
			return "", err
		}
		return n.ID, nil
	case "reminder":
		var who []string
		for _, to := range strings.Split(firstNonEmpty(p["to"], "assignee"), ",") {
			if id := a.personFor(rs, pc, strings.TrimSpace(to)); id != "" {
				who = append(who, id)
			}
		}
		if len(who) == 0 {
			return "", sdk.Permanent(fmt.Errorf("reminder: nobody to remind (%q)", p["to"]))
		}
		a.notifyAgents(ctx, rs, "reminder", who, pc.ID, key, "Reminder: "+firstNonEmpty(p["text"], f.Name))
		return strings.Join(who, ","), nil
	case "message":
		instance := firstNonEmpty(p["instance"], pc.Instance)
		ch, ok := a.o.Pipeline.Options().Plugins.Channel(instance)
		if !ok {
			return "", sdk.Permanent(fmt.Errorf("no channel plugin instance %q", instance))
		}
		out := &sdk.Outbound{IdempotencyKey: key, To: pc.Contact, Type: "text", Text: p["text"]}
		if instance == pc.Instance {
			out.ConversationKey = pc.Key
		}
		r, err := ch.Send(ctx, out)
		if err != nil {
			return "", err
		}
		return r.ProviderMessageID, nil
	case "webhook":
		if a.o.Notifier == nil {
			return "", sdk.Permanent(errors.New("no notifier for webhooks"))
		}
		n := &Notification{Key: key, Kind: "followup", Target: "webhook", Conv: pc.ID, Team: pc.Team,
			Agent: pc.Assignee, Text: f.Name, Summary: a.summarize(ctx, pc.ID), Params: p, At: a.now(), URL: p["url"]}
		return "webhook", a.o.Notifier.Notify(ctx, n)
	}
	return "", sdk.Permanent(fmt.Errorf("unknown followup action %q", f.Action))
}

// personFor resolves a follow-up's person: assignee, owner, supervisor (of
// the conversation's team) or an agent id ("agent:ID" or "ID").
func (a *Assigner) personFor(rs *rules.Ruleset, pc *pipeline.Conversation, who string) string {
	switch who {
	case "assignee":
		if pc.Assignee != "" {
			return pc.Assignee
		}
		if ag, ok := findAgent(rs, pc.Owner); ok {
			return ag.ID
		}
		return ""
	case "owner":
		if ag, ok := findAgent(rs, pc.Owner); ok {
			return ag.ID
		}
		return ""
	case "supervisor":
		if t, ok := rs.Team(pc.Team); ok {
			return t.Supervisor
		}
		return ""
	}
	id := strings.TrimPrefix(who, "agent:")
	if _, ok := rs.Agents()[id]; ok {
		return id
	}
	return ""
}

// crmOwner is the CRM's user id of an agent: its crm_owner attribute, or
// its id.
func crmOwner(rs *rules.Ruleset, agent string) string {
	if agent == "" {
		return ""
	}
	if ag, ok := rs.Agents()[agent]; ok && ag.Attributes["crm_owner"] != "" {
		return ag.Attributes["crm_owner"]
	}
	return agent
}

func (a *Assigner) crm() (pipeline.CRMPlugin, bool) {
	if a.o.Pipeline == nil {
		return nil, false
	}
	o := a.o.Pipeline.Options()
	if o.CRM == "" || o.Plugins == nil {
		return nil, false
	}
	return o.Plugins.CRM(o.CRM)
}
