package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// convSummary is a conversation in a list.
type convSummary struct {
	ID             string       `json:"id"`
	Instance       string       `json:"instance"`
	Channel        string       `json:"channel"`
	Contact        sdk.Identity `json:"contact"`
	State          string       `json:"state"`
	Team           string       `json:"team,omitempty"`
	Priority       string       `json:"priority,omitempty"`
	Assignee       string       `json:"assignee,omitempty"`
	Score          int          `json:"score"`
	Tier           string       `json:"tier,omitempty"`
	Turns          int          `json:"turns"`
	Flagged        string       `json:"flagged,omitempty"`
	HandoffReason  string       `json:"handoff_reason,omitempty"`
	FirstSeen      time.Time    `json:"first_seen"`
	LastCustomerAt time.Time    `json:"last_customer_at,omitzero"`
	LastAgentAt    time.Time    `json:"last_agent_at,omitzero"`
	HandedOffAt    time.Time    `json:"handed_off_at,omitzero"`
	UpdatedAt      time.Time    `json:"updated_at"`
	SLABreached    *bool        `json:"sla_breached,omitempty"`
}

func summarize(c *pipeline.Conversation) convSummary {
	return convSummary{ID: c.ID, Instance: c.Instance, Channel: c.Channel, Contact: c.Contact, State: c.State, Team: c.Team,
		Priority: c.Priority, Assignee: c.Assignee, Score: c.Score, Tier: c.Tier, Turns: c.Turns, Flagged: c.Flagged,
		HandoffReason: c.HandoffReason, FirstSeen: c.FirstSeen, LastCustomerAt: c.LastCustomerAt, LastAgentAt: c.LastAgentAt,
		HandedOffAt: c.HandedOffAt, UpdatedAt: c.UpdatedAt}
}

// convFilter is the query of GET /conversations.
type convFilter struct {
	state, channel, team, assignee, tier, instance string
	sla                                            *bool
}

var convStates = map[string]bool{pipeline.StateBot: true, pipeline.StateHandedOff: true, pipeline.StateHuman: true, pipeline.StateClosed: true}

func parseConvFilter(c *fiber.Ctx) (convFilter, error) {
	f := convFilter{state: c.Query("state"), channel: c.Query("channel"), team: c.Query("team"),
		assignee: c.Query("assignee"), tier: c.Query("tier"), instance: c.Query("instance")}
	if f.state != "" && !convStates[f.state] {
		return f, invalid("state", "must be bot, handed_off, human or closed")
	}
	if s := c.Query("sla_breached"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return f, invalid("sla_breached", "must be true or false")
		}
		f.sla = &b
	}
	return f, nil
}

func (f convFilter) match(c *pipeline.Conversation) bool {
	return (f.state == "" || f.state == c.State) && (f.channel == "" || f.channel == c.Channel) &&
		(f.team == "" || f.team == c.Team) && (f.assignee == "" || f.assignee == c.Assignee) &&
		(f.tier == "" || f.tier == c.Tier) && (f.instance == "" || f.instance == c.Instance)
}

// breached reports whether a conversation missed an SLA deadline: a
// recorded breach, or a running deadline already past.
func breached(r *assign.Record, now time.Time) bool {
	if r == nil {
		return false
	}
	return len(r.Breaches) > 0 || (!r.Deadline.IsZero() && now.After(r.Deadline) && r.State == assign.RecAssigned)
}

func (api *API) assigner() (Assigner, error) {
	if api.o.Assign == nil {
		return nil, errProblem(http.StatusServiceUnavailable, PNotConfigured, "The assignment service is not running in this hub.")
	}
	return api.o.Assign, nil
}

// record returns the assigner's record of a conversation, nil when it has none.
func (api *API) record(ctx context.Context, conv string) (*assign.Record, error) {
	if api.o.Assign == nil {
		return nil, nil
	}
	r, err := api.o.Assign.Record(ctx, conv)
	if errors.Is(err, assign.ErrNotFound) || errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return r, err
}

// listConversations is GET /conversations. Agent keys see only their own
// conversations whatever the query says.
func (api *API) listConversations(c *fiber.Ctx) error {
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	f, err := parseConvFilter(c)
	if err != nil {
		return err
	}
	p := principal(c)
	if p.Role == RoleAgent {
		if f.assignee != "" && f.assignee != p.Agent {
			return c.JSON(page[convSummary]{Items: []convSummary{}})
		}
		f.assignee = p.Agent
	}
	if f.sla != nil && api.o.Assign == nil {
		return errProblem(http.StatusServiceUnavailable, PNotConfigured, "sla_breached needs the assignment service, which is not running in this hub.")
	}
	ctx := c.UserContext()
	now := api.now()
	out := page[convSummary]{Items: []convSummary{}}
	scanned := 0
	for {
		items, next, err := api.st.List(ctx, pipeline.NSConversations, "", cursor, 200)
		if err != nil {
			return cursorErr(err)
		}
		full := false
		for _, it := range items {
			scanned++
			cursor = it.Key
			var cv pipeline.Conversation
			if json.Unmarshal(it.Value, &cv) != nil || !f.match(&cv) {
				continue
			}
			s := summarize(&cv)
			if f.sla != nil {
				rec, err := api.record(ctx, cv.ID)
				if err != nil {
					return err
				}
				b := breached(rec, now)
				if b != *f.sla {
					continue
				}
				s.SLABreached = &b
			}
			out.Items = append(out.Items, s)
			if len(out.Items) == limit {
				full = true
				break
			}
		}
		if full || (next != "" && scanned >= scanCap) {
			out.NextCursor = encodeCursor(cursor)
			break
		}
		if next == "" {
			break
		}
	}
	return c.JSON(out)
}

// visibleConv loads a conversation the caller may see. For an agent key,
// another agent's conversation is "not found", exactly like a missing one.
func (api *API) visibleConv(c *fiber.Ctx) (*pipeline.Conversation, error) {
	id := param(c, "id")
	cv, _, err := api.app.Pipeline.Conversations().Get(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("conversation", id)
	}
	if err != nil {
		return nil, err
	}
	if p := principal(c); p.Role == RoleAgent && (p.Agent == "" || cv.Assignee != p.Agent) {
		return nil, notFound("conversation", id)
	}
	return cv, nil
}

// convDetail is one conversation with what explains it.
type convDetail struct {
	*pipeline.Conversation
	History     []pipeline.Turn        `json:"history"`
	Assignment  *assign.Record         `json:"assignment,omitempty"`
	SLABreached bool                   `json:"sla_breached"`
	Trail       []pipeline.AuditRecord `json:"trail"`
	TrailNext   string                 `json:"trail_next_cursor,omitempty"`
}

func (api *API) getConversation(c *fiber.Ctx) error {
	cv, err := api.visibleConv(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	hist, err := api.app.Pipeline.History(ctx, cv.ID)
	if err != nil {
		return err
	}
	rec, err := api.record(ctx, cv.ID)
	if err != nil {
		return err
	}
	trail, next, err := api.trail(ctx, cv.ID, "", 100)
	if err != nil {
		return err
	}
	if hist == nil {
		hist = []pipeline.Turn{}
	}
	return c.JSON(convDetail{Conversation: cv, History: hist, Assignment: rec, SLABreached: breached(rec, api.now()),
		Trail: trail, TrailNext: encodeCursor(next)})
}

func (api *API) trail(ctx context.Context, conv, after string, limit int) ([]pipeline.AuditRecord, string, error) {
	recs, next, err := api.st.Range(ctx, pipeline.ConvAuditLog(conv), store.LogRange{After: after, Limit: limit})
	if err != nil {
		return nil, "", cursorErr(err)
	}
	out := make([]pipeline.AuditRecord, 0, len(recs))
	for _, r := range recs {
		var a pipeline.AuditRecord
		if json.Unmarshal(r.Data, &a) == nil {
			out = append(out, a)
		}
	}
	return out, next, nil
}

// conversationTrail is the conversation's whole audit trail, paged: every
// effect, state change, assignment and admin action on it.
func (api *API) conversationTrail(c *fiber.Ctx) error {
	cv, err := api.visibleConv(c)
	if err != nil {
		return err
	}
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	items, next, err := api.trail(c.UserContext(), cv.ID, cursor, limit)
	if err != nil {
		return err
	}
	return c.JSON(page[pipeline.AuditRecord]{Items: items, NextCursor: encodeCursor(next)})
}

// ---------------------------------------------------------------- actions

type actionRequest struct {
	Agent  string `json:"agent,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// decodeOptional is decodeBody for bodies that may be left out.
func decodeOptional(c *fiber.Ctx, v any) error {
	if len(strings.TrimSpace(string(c.Body()))) == 0 {
		return nil
	}
	return decodeBody(c, v)
}

// assignErr maps the assigner's errors to problems; field names the
// request field an unknown agent or team came from ("" when it came from
// the path, a 404).
func assignErr(err error, field, who string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, assign.ErrUnknownAgent):
		if field == "" {
			return notFound("agent", who)
		}
		return invalid(field, "no agent %q in the running rules", who)
	case errors.Is(err, assign.ErrUnknownTeam):
		return notFound("team", who)
	case errors.Is(err, assign.ErrNotFound):
		return errProblem(http.StatusNotFound, PNotFound, "The assignment service has no record of this conversation.")
	case errors.Is(err, assign.ErrAtCapacity):
		return errProblem(http.StatusConflict, PAtCapacity, "%v", err)
	case errors.Is(err, assign.ErrNoAgent):
		return errProblem(http.StatusConflict, PConflict, "Nobody else can take the conversation now; it stays where it is.")
	case errors.Is(err, assign.ErrNoTeam):
		return errProblem(http.StatusConflict, PConflict, "The conversation has no team to assign it in; reassign it to an agent by name.")
	case errors.Is(err, assign.ErrInvalid):
		return errProblem(http.StatusUnprocessableEntity, PValidation, "%v", err)
	}
	return err
}

// actingAgent is the agent an action is done as: an agent key's own, or
// the one a supervisor names.
func actingAgent(p *Principal, named string, required bool) (string, error) {
	if p.Role == RoleAgent {
		if named != "" && named != p.Agent {
			return "", invalid("agent", "an agent key acts only as its own agent %q", p.Agent)
		}
		return p.Agent, nil
	}
	if named == "" && required {
		return "", invalid("agent", "name the agent who takes the conversation")
	}
	if named != "" && !agentID.MatchString(named) {
		return "", invalid("agent", "%q is not an agent id", named)
	}
	return named, nil
}

func reasonFor(p *Principal, r string) string {
	s := "admin API, key " + p.KeyID + " (" + p.Name + ")"
	if r != "" {
		s += ": " + r
	}
	return s
}

func (api *API) takeOver(c *fiber.Ctx) error {
	cv, err := api.visibleConv(c)
	if err != nil {
		return err
	}
	as, err := api.assigner()
	if err != nil {
		return err
	}
	var req actionRequest
	if err := decodeOptional(c, &req); err != nil {
		return err
	}
	p := principal(c)
	agent, err := actingAgent(p, req.Agent, true)
	if err != nil {
		return err
	}
	a, err := as.TakeOver(c.UserContext(), cv.ID, agent)
	if err := assignErr(err, "agent", agent); err != nil {
		return err
	}
	noteAudit(c, cv.ID, "taken over by "+agent)
	return c.JSON(a)
}

func (api *API) reassign(c *fiber.Ctx) error {
	cv, err := api.visibleConv(c)
	if err != nil {
		return err
	}
	as, err := api.assigner()
	if err != nil {
		return err
	}
	var req actionRequest
	if err := decodeOptional(c, &req); err != nil {
		return err
	}
	agent, err := actingAgent(principal(c), req.Agent, false)
	if err != nil {
		return err
	}
	a, err := as.Reassign(c.UserContext(), cv.ID, agent)
	if err := assignErr(err, "agent", agent); err != nil {
		return err
	}
	noteAudit(c, cv.ID, "reassigned to "+firstNonEmpty(a.Agent, "the queue of "+a.Team))
	return c.JSON(a)
}

func (api *API) release(c *fiber.Ctx) error {
	return api.endAction(c, "released to the bot", func(as Assigner, ctx context.Context, id, reason string) error {
		return as.Release(ctx, id, reason)
	})
}

func (api *API) closeConv(c *fiber.Ctx) error {
	return api.endAction(c, "closed", func(as Assigner, ctx context.Context, id, reason string) error {
		return as.Close(ctx, id, reason)
	})
}

func (api *API) endAction(c *fiber.Ctx, what string, do func(Assigner, context.Context, string, string) error) error {
	cv, err := api.visibleConv(c)
	if err != nil {
		return err
	}
	as, err := api.assigner()
	if err != nil {
		return err
	}
	var req actionRequest
	if err := decodeOptional(c, &req); err != nil {
		return err
	}
	if req.Agent != "" {
		return invalid("agent", "not used by this action")
	}
	ctx := c.UserContext()
	if err := assignErr(do(as, ctx, cv.ID, reasonFor(principal(c), req.Reason)), "", ""); err != nil {
		return err
	}
	noteAudit(c, cv.ID, what)
	after, _, err := api.app.Pipeline.Conversations().Get(ctx, cv.ID)
	if err != nil {
		return err
	}
	return c.JSON(summarize(after))
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ---------------------------------------------------------------- send

type sendRequest struct {
	Text  string `json:"text"`
	Agent string `json:"agent,omitempty"`
}

type sendResponse struct {
	Conv              string    `json:"conv"`
	ProviderMessageID string    `json:"provider_message_id"`
	Agent             string    `json:"agent,omitempty"`
	State             string    `json:"state"`
	SentAt            time.Time `json:"sent_at"`
	Duplicate         bool      `json:"duplicate,omitempty"`
}

// nsSends remembers sends by idempotency key, so a client's retry does
// not message the customer twice.
const nsSends = "adminsend"

const maxMessage = 4096

// sendMessage sends a message to the customer as an agent, through the
// conversation's channel plugin. It is an agent message in every way: the
// agent counter moves (a bot reply composed meanwhile is dropped), a
// waiting bot reply is cancelled, the state becomes human, the history
// gets the turn, the trail an audit record, and the pipeline sees the event
// (so assignment's SLA counts the response).
func (api *API) sendMessage(c *fiber.Ctx) error {
	cv, err := api.visibleConv(c)
	if err != nil {
		return err
	}
	var req sendRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(req.Text) == "":
		return invalid("text", "the message text is required")
	case len(req.Text) > maxMessage:
		return invalid("text", "at most %d bytes", maxMessage)
	}
	p := principal(c)
	agent, err := actingAgent(p, req.Agent, false)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	idem := c.Get("Idempotency-Key")
	if idem == "" {
		idem, _ = c.Locals("requestid").(string)
	}
	if len(idem) > 128 {
		return invalid("Idempotency-Key", "at most 128 characters")
	}
	key := "admin:" + cv.ID + ":" + idem
	if b, _, err := api.st.Get(ctx, nsSends, key); err == nil {
		var prev sendResponse
		if json.Unmarshal(b, &prev) == nil {
			prev.Duplicate = true
			return c.JSON(prev)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	ch, ok := api.app.Plugins.Channel(cv.Instance)
	if !ok {
		return errProblem(http.StatusConflict, PConflict, "The conversation's channel instance %q is not running.", cv.Instance)
	}
	// Before the send: a bot reply being composed right now must see that
	// a person spoke, and one waiting for its quiet window is void.
	if _, err := api.st.Incr(ctx, pipeline.AgentCounterKey(cv.ID), 1, 30*24*time.Hour); err != nil {
		return err
	}
	_ = api.app.Pipeline.CancelTimer(ctx, "reply:"+cv.ID)
	res, err := ch.Send(ctx, &sdk.Outbound{IdempotencyKey: key, ConversationKey: cv.Key, To: cv.Contact, Type: "text", Text: req.Text,
		Metadata: map[string]string{"agent": agent}})
	if err != nil {
		api.app.Pipeline.Audit(ctx, pipeline.AuditRecord{Kind: "agent_message_failed", Conv: cv.ID, Key: key, RequestID: rid(c),
			Actor: p.Actor(), Detail: sdk.ReasonOf(err)})
		if sdk.IsRetryable(err) {
			secs := max(1, int(sdk.RetryAfterOf(err)/time.Second))
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
			return errProblem(http.StatusServiceUnavailable, PUnavailable, "The channel could not take the message now; retry: %s", sdk.ReasonOf(err))
		}
		return errProblem(http.StatusBadGateway, PPluginFailed, "The channel refused the message: %s", sdk.ReasonOf(err))
	}
	now := api.now()
	var prevState string
	after, err := api.app.Pipeline.Conversations().Update(ctx, cv.ID, nil, func(x *pipeline.Conversation) error {
		prevState = x.State
		if x.State == pipeline.StateBot || x.State == pipeline.StateHandedOff {
			x.State = pipeline.StateHuman
		}
		if now.After(x.LastAgentAt) {
			x.LastAgentAt = now
		}
		return nil
	})
	if err != nil {
		return err
	}
	o := api.app.Pipeline.Options()
	turn, _ := json.Marshal(pipeline.Turn{ID: res.ProviderMessageID, Role: "agent", Text: req.Text, At: now})
	if _, err := api.st.AppendTurn(ctx, cv.ID, turn, o.HistoryTurns, o.HistoryTTL); err != nil {
		return err
	}
	detail := "sent by " + firstNonEmpty(agent, p.Name)
	if prevState != after.State {
		detail += "; " + prevState + " -> " + after.State
	}
	api.app.Pipeline.Audit(ctx, pipeline.AuditRecord{Kind: "agent_message", Conv: cv.ID, Key: key, RequestID: rid(c),
		Target: res.ProviderMessageID, Actor: p.Actor(), Detail: detail, Score: after.Score, Tier: after.Tier})
	// The pipeline handles it like an agent reply seen on the channel: the
	// assignment hooks count the response. Its id is the provider's, so a
	// channel echo of this message is a duplicate there.
	ev := &sdk.Event{ID: res.ProviderMessageID, Kind: sdk.EventMessage, ConversationKey: cv.Key, Contact: cv.Contact,
		Direction: sdk.DirectionOutbound, Author: sdk.AuthorAgent, AgentID: agent, Message: &sdk.Message{Type: "text", Text: req.Text}, Timestamp: now}
	if _, err := api.app.Pipeline.Enqueue(ctx, &pipeline.Task{Kind: pipeline.TaskEvent, Instance: cv.Instance, Conv: cv.ID,
		RequestID: rid(c), ReceivedAt: now, Event: ev}); err != nil {
		api.log.Warn("agent message sent but not queued for the pipeline", "conv", cv.ID, "request_id", rid(c), "err", err)
	}
	resp := sendResponse{Conv: cv.ID, ProviderMessageID: res.ProviderMessageID, Agent: agent, State: after.State, SentAt: now}
	b, _ := json.Marshal(resp)
	if _, err := api.st.Put(ctx, nsSends, key, b, 7*24*time.Hour); err != nil {
		api.log.Warn("could not remember an agent message's idempotency key", "conv", cv.ID, "err", err)
	}
	noteAudit(c, cv.ID, fmt.Sprintf("message %s %s", res.ProviderMessageID, detail))
	return c.Status(http.StatusCreated).JSON(resp)
}

func rid(c *fiber.Ctx) string {
	s, _ := c.Locals("requestid").(string)
	return s
}
