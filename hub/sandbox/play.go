package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

// Report is what Play saw, per scenario.
type Report struct {
	Conversations []ConvReport
}

// ConvReport is one scenario's conversation.
type ConvReport struct {
	Scenario Scenario
	User     string // the customer's id on the channel
	Conv     string // the hub's conversation id
	Steps    []StepReport
	Final    *pipeline.Conversation
}

// StepReport is what the hub did with one message.
type StepReport struct {
	Step  Step
	Event string // the provider's message id (the hub's event id)
	// Answered is true when the bot's reply task ran for this message.
	Answered bool
	// Records are the audit records of this conversation that appeared
	// while the message was handled.
	Records []pipeline.AuditRecord
	// Replies are the texts the hub sent (from its history).
	Replies []string
	// Conv is the conversation state after the message; Assignment the
	// assigner's record of it (nil when it was never handed off).
	Conv       *pipeline.Conversation
	Assignment *assign.Record
	// NewContact is set when this message created the conversation's CRM
	// contact.
	NewContact bool
	// Background are records of other conversations that appeared
	// meanwhile: notifications, SLA breaches, assignments from a queue.
	Background []pipeline.AuditRecord
}

// stepTimeout bounds one message's handling: LLM retries with backoff
// stay well inside it; a dead-lettered task would never finish.
const stepTimeout = 45 * time.Second

// Play runs every scenario through the real webhook path, one message at
// a time (each waits for the hub to finish the one before, as a customer
// waits for an answer), and shows the trace.
func (s *Sandbox) Play(ctx context.Context) (*Report, error) {
	if err := s.skipTrail(ctx); err != nil {
		return nil, err
	}
	if err := s.verifyWhatsApp(ctx); err != nil {
		return nil, err
	}
	scs := Scenarios()
	total := 0
	for _, sc := range scs {
		total += len(sc.Steps)
	}
	rep := &Report{}
	n := 0
	for i, sc := range scs {
		s.view.scenario(i+1, len(scs), sc)
		cr := ConvReport{Scenario: sc, User: customerID(sc)}
		if sc.Channel == "zalo" {
			s.Zalo.SetUserProfile(cr.User, sc.Customer)
		}
		for _, st := range sc.Steps {
			n++
			sr, err := s.step(ctx, &cr, st, n, total)
			if err != nil {
				return rep, err
			}
			cr.Steps = append(cr.Steps, sr)
		}
		cr.Final = cr.Steps[len(cr.Steps)-1].Conv
		rep.Conversations = append(rep.Conversations, cr)
	}
	s.view.summary(s, rep)
	s.played = rep
	return rep, nil
}

// Say sends text as a Zalo customer called "Bạn" (you) and shows what the
// hub did, like a scripted step. The conversation carries on across calls.
func (s *Sandbox) Say(ctx context.Context, you *ConvReport, text string) (StepReport, error) {
	if you.User == "" {
		you.User = zalofake.NewID()
		you.Scenario = Scenario{Title: "You", Channel: "zalo", Customer: "Bạn"}
		s.Zalo.SetUserProfile(you.User, "Bạn")
	}
	sr, err := s.step(ctx, you, Step{Text: text}, 0, 0)
	if err == nil {
		you.Steps = append(you.Steps, sr)
	}
	return sr, err
}

// customerID gives each play fresh customers, so that a second play on a
// kept store (--keep) starts new conversations: a Zalo user id, or a
// WhatsApp number made of the script's country prefix and random digits.
func customerID(sc Scenario) string {
	if sc.Channel == "zalo" {
		return zalofake.NewID()
	}
	return fmt.Sprintf("%s%05d", sc.User, rand.IntN(100000))
}

// step posts one message and waits until the hub has handled it: its
// event task, and the reply task when the bot had the conversation.
func (s *Sandbox) step(ctx context.Context, cr *ConvReport, st Step, n, total int) (StepReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prompting = false
	sr := StepReport{Step: st}
	prevContact := ""
	if k := len(cr.Steps); k > 0 && cr.Steps[k-1].Conv != nil {
		prevContact = cr.Steps[k-1].Conv.ContactID
	}
	s.view.message(cr.Scenario, st, n, total)
	events, replies := s.processed("event"), s.processed("reply")
	id, err := s.post(ctx, cr, st)
	if err != nil {
		return sr, err
	}
	sr.Event = id
	if err := s.until(ctx, "the hub to handle the message", func() bool { return s.processed("event") > events }); err != nil {
		return sr, err
	}
	recs, err := s.trail(ctx)
	if err != nil {
		return sr, err
	}
	if cr.Conv == "" {
		for _, r := range recs {
			if r.Inbound == id && r.Conv != "" {
				cr.Conv = r.Conv
			}
		}
		if cr.Conv == "" {
			return sr, fmt.Errorf("no audit record names message %s: was it refused? (the hub's log: %s)", id, s.LogFile)
		}
		s.names[cr.Conv] = cr.Scenario.Customer
	}
	conv, _, err := s.App.Pipeline.Conversations().Get(ctx, cr.Conv)
	if err != nil {
		return sr, err
	}
	if !st.Agent && conv.State == pipeline.StateBot {
		// The bot has the conversation: a reply task follows after the
		// quiet window.
		sr.Answered = true
		if err := s.until(ctx, "the bot's reply", func() bool { return s.processed("reply") > replies }); err != nil {
			return sr, err
		}
		more, err := s.trail(ctx)
		if err != nil {
			return sr, err
		}
		recs = append(recs, more...)
		if conv, _, err = s.App.Pipeline.Conversations().Get(ctx, cr.Conv); err != nil {
			return sr, err
		}
	}
	sr.Conv = conv
	sr.NewContact = conv.ContactID != "" && conv.ContactID != prevContact
	for _, r := range recs {
		switch {
		case r.Conv == cr.Conv:
			sr.Records = append(sr.Records, r)
		case background[r.Kind]:
			sr.Background = append(sr.Background, r)
		}
	}
	if s.App.Assign != nil {
		if rec, err := s.App.Assign.Record(ctx, cr.Conv); err == nil {
			sr.Assignment = rec
		}
	}
	hist, err := s.App.Pipeline.History(ctx, cr.Conv)
	if err != nil {
		return sr, err
	}
	for _, r := range sr.Records {
		if r.Kind != "reply_sent" {
			continue
		}
		for _, t := range hist {
			if t.ID == r.Key {
				sr.Replies = append(sr.Replies, t.Text)
			}
		}
	}
	s.view.outcome(sr, s.names)
	return sr, nil
}

// background are the kinds of record shown when they concern another
// conversation than the message's: what the hub does on its own time.
var background = map[string]bool{
	"assignment": true, "queued": true, "notification": true, "notification_failed": true,
	"sla_breach": true, "release": true, "followup": true, "followup_failed": true, "dead_letter": true,
}

// Follow shows, until ctx ends, what the hub does on its own time after
// the play: SLA deadlines missed, escalations, notifications, queued
// conversations assigned when a team opens.
func (s *Sandbox) Follow(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		s.mu.Lock()
		recs, err := s.trail(ctx)
		shown := false
		if err == nil {
			for _, r := range recs {
				if background[r.Kind] {
					if !shown && s.prompting {
						s.view.printf("\n")
					}
					s.view.background(r, s.names)
					shown = true
				}
			}
		}
		if shown && s.prompting {
			s.prompt()
		}
		s.mu.Unlock()
	}
}

// post sends a message through the fake provider: a webhook signed the
// way the provider signs it, to the hub's real webhook endpoint. It
// returns the provider's message id, which is the hub's event id.
func (s *Sandbox) post(ctx context.Context, cr *ConvReport, st Step) (string, error) {
	url := s.WebhookURL() + "/webhooks/" + cr.Scenario.Channel
	var (
		resp *http.Response
		id   string
		err  error
	)
	switch cr.Scenario.Channel {
	case "zalo":
		ev := s.Zalo.Text(cr.User, st.Text)
		if st.Agent {
			ev = s.Zalo.OAText(cr.User, st.Text, "admin-"+st.AgentName)
		}
		id = ev.MsgID()
		resp, err = s.Zalo.PostWebhook(ctx, url, ev)
	case "whatsapp":
		m := wafake.Text(cr.User, st.Text)
		m.ID = s.WhatsApp.NewMessageID(cr.User)
		id = m.ID
		body := []byte(nil)
		if st.Agent {
			m.To = cr.User
			body = s.WhatsApp.Echoes(m)
		} else {
			m.Name = cr.Scenario.Customer
			body = s.WhatsApp.Inbound(m)
		}
		resp, err = s.WhatsApp.PostWebhook(ctx, url, body)
	default:
		return "", fmt.Errorf("unknown channel %q", cr.Scenario.Channel)
	}
	if err != nil {
		return "", fmt.Errorf("webhook to %s: %w", url, err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("webhook to %s: %s %s", url, resp.Status, b)
	}
	return id, nil
}

// verifyWhatsApp performs Meta's subscription handshake, as Meta does
// when a webhook URL is saved in the app's dashboard.
func (s *Sandbox) verifyWhatsApp(ctx context.Context) error {
	const challenge = "sandbox-challenge"
	resp, err := s.WhatsApp.VerifyWebhook(ctx, s.WebhookURL()+"/webhooks/whatsapp", challenge)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != challenge {
		return fmt.Errorf("WhatsApp webhook verification: %s %q", resp.Status, b)
	}
	s.view.progress("WhatsApp webhook verified (GET /webhooks/whatsapp answered Meta's challenge)")
	return nil
}

// processed reads the pipeline's completed-task counter of kind from the
// hub's metrics registry. Play sends one message at a time, so a counter
// that moved means this message's task is done.
func (s *Sandbox) processed(kind string) float64 {
	mfs, err := s.App.Registry.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_tasks_processed_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// until polls cond until it holds, ctx ends or stepTimeout passes.
func (s *Sandbox) until(ctx context.Context, what string, cond func() bool) error {
	deadline := time.Now().Add(stepTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s; see the hub's log (%s) and its dead letters (GET /admin/v1/dead-letters)", stepTimeout, what, s.LogFile)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// trail returns the audit records appended since the last call, reading
// the hub's audit log with a cursor.
func (s *Sandbox) trail(ctx context.Context) ([]pipeline.AuditRecord, error) {
	var out []pipeline.AuditRecord
	for {
		recs, next, err := s.App.Store.Range(ctx, pipeline.AuditLog, store.LogRange{After: s.cursor, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			s.cursor = r.ID
			var a pipeline.AuditRecord
			if err := json.Unmarshal(r.Data, &a); err == nil {
				out = append(out, a)
			}
		}
		if next == "" || len(recs) == 0 {
			return out, nil
		}
	}
}

// skipTrail moves the cursor past records of earlier runs (--keep).
func (s *Sandbox) skipTrail(ctx context.Context) error {
	_, err := s.trail(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
