// Package pipeline turns queued webhook events into replies, scored leads
// and CRM records, keeping the delivery promise: every acknowledged event
// is processed at least once, events of one conversation in order, and
// every effect (a reply, a CRM write, a notification) at most once because
// each carries an idempotency key derived from the inbound message.
package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/rules"
)

// ChannelPlugin, CRMPlugin and LLMPlugin are what the pipeline needs of
// plugins; the plugin host's handles satisfy them.
type ChannelPlugin interface {
	Send(ctx context.Context, msg *sdk.Outbound) (*sdk.SendResult, error)
}

type CRMPlugin interface {
	UpsertContact(ctx context.Context, req *sdk.UpsertContactRequest) (*sdk.UpsertContactResult, error)
	GetContact(ctx context.Context, id string, identity *sdk.Identity) (*sdk.Contact, error)
	AddNote(ctx context.Context, key string, note *sdk.Note) (*sdk.Note, error)
	UpsertDeal(ctx context.Context, key string, deal *sdk.Deal) (*sdk.Deal, error)
	CreateTask(ctx context.Context, key string, task *sdk.Task) (*sdk.Task, error)
}

type LLMPlugin interface {
	Generate(ctx context.Context, req *sdk.GenerateRequest) (*sdk.GenerateResponse, error)
}

// Plugins finds plugin instances by name.
type Plugins interface {
	Channel(name string) (ChannelPlugin, bool)
	CRM(name string) (CRMPlugin, bool)
	LLM(name string) (LLMPlugin, bool)
}

// Options configure a Pipeline. Zero values take the defaults noted.
type Options struct {
	Store   store.Store
	Plugins Plugins
	Rules   *rules.Engine // nil: no rules (score 0, no routing)
	Logger  *slog.Logger
	Metrics *Metrics
	Now     func() time.Time

	Replica string // this process's id; default hostname-pid-random

	LLM string // llm instance; "" = no bot replies
	CRM string // crm instance; "" = no CRM writes

	SystemPrompt   string
	Workers        int           // concurrent tasks per process (256)
	MaxInFlight    int           // read-ahead per partition (512)
	HistoryTurns   int           // 20
	HistoryTTL     time.Duration // 24h
	HardCap        int           // 200 turns: flag the conversation
	DedupeTTL      time.Duration // 7 days
	QuietWindow    time.Duration // 0: reply at once
	MaxDeliveries  int           // 5
	RetryBase      time.Duration // 500ms
	RetryMax       time.Duration // 2m
	LeaseTTL       time.Duration // partition lease (10s)
	AuditRetention time.Duration
	Deals          map[string]DealStage
	Pacing         Pacing
	// Hooks lets later stages (assignment, notifications) act on decisions.
	Hooks Hooks
}

// DealStage is where a tier puts the contact's deal.
type DealStage struct{ Pipeline, Stage string }

// Pacing delays a reply in proportion to its length, through a timer, so a
// worker never waits.
type Pacing struct {
	Enabled  bool
	PerChar  time.Duration
	Min, Max time.Duration
}

// Hooks are called by the pipeline at points where other parts of the hub
// act. Each must be idempotent: a task can run more than once.
type Hooks struct {
	// OnHandoff runs when a conversation is handed to a person.
	OnHandoff func(ctx context.Context, conv *Conversation, d *rules.Decision, key string) error
	// OnAgentMessage runs when an agent's message is seen.
	OnAgentMessage func(ctx context.Context, conv *Conversation, e *sdk.Event) error
	// OnRelease runs when a conversation goes back to the bot.
	OnRelease func(ctx context.Context, conv *Conversation) error
	// OnCustomerMessage runs for a customer's message while a person has
	// the conversation (handed_off or human): response deadlines.
	OnCustomerMessage func(ctx context.Context, conv *Conversation, e *sdk.Event) error
}

// Pipeline processes the queue.
type Pipeline struct {
	o             Options
	log           *slog.Logger
	m             *Metrics
	convs         *Conversations
	now           func() time.Time
	sem           chan struct{}
	timerHandlers map[string]TimerHandler
}

// New returns a Pipeline; Run starts it.
func New(o Options) *Pipeline {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Replica == "" {
		host, _ := os.Hostname()
		o.Replica = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.IntN(1<<16))
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt(&o.Workers, 256)
	defInt(&o.MaxInFlight, 512)
	defInt(&o.HistoryTurns, 20)
	defInt(&o.HardCap, 200)
	defInt(&o.MaxDeliveries, 5)
	defDur(&o.HistoryTTL, 24*time.Hour)
	defDur(&o.DedupeTTL, 7*24*time.Hour)
	defDur(&o.RetryBase, 500*time.Millisecond)
	defDur(&o.RetryMax, 2*time.Minute)
	defDur(&o.LeaseTTL, 10*time.Second)
	defDur(&o.AuditRetention, 90*24*time.Hour)
	p := &Pipeline{o: o, log: o.Logger, m: o.Metrics, now: o.Now,
		convs: &Conversations{KV: o.Store, Now: o.Now}, sem: make(chan struct{}, o.Workers)}
	p.timerHandlers = map[string]TimerHandler{timerEnqueue: p.fireEnqueue}
	return p
}

// SetHooks installs the hooks of later stages (assignment, notifications).
// Call it before Run.
func (p *Pipeline) SetHooks(h Hooks) { p.o.Hooks = h }

// Store is the pipeline's store.
func (p *Pipeline) Store() store.Store { return p.o.Store }

// Conversations gives access to conversation state (for the admin API).
func (p *Pipeline) Conversations() *Conversations { return p.convs }

// Replica is this process's id.
func (p *Pipeline) Replica() string { return p.o.Replica }

// Options returns the effective options.
func (p *Pipeline) Options() Options { return p.o }

// ---------------------------------------------------------------- effects

// EffectKey is the key of an effect record in the store's records
// (store.Dedupe.Record): one store operation to write and one to read, where
// a versioned KV item cost a script with five commands.
func EffectKey(key string) string { return "fx:" + key }

// AuditLog is the log name of the effects audit trail.
const AuditLog = "audit"

// AuditRecord is one effect, for a supervisor asking "why did this
// customer get this reply, and what did we write about them".
type AuditRecord struct {
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"` // reply_sent, reply_dropped, crm_contact, crm_note, crm_deal, crm_task, handoff, release, state, notification, assignment, dead_letter
	Conv      string    `json:"conv"`
	Key       string    `json:"key,omitempty"`     // idempotency key
	Inbound   string    `json:"inbound,omitempty"` // the inbound event id it came from
	RequestID string    `json:"request_id,omitempty"`
	Target    string    `json:"target,omitempty"` // record id: provider message id, CRM id
	Rules     string    `json:"rules,omitempty"`  // rule set version
	Score     int       `json:"score,omitempty"`
	Tier      string    `json:"tier,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	Actor     string    `json:"actor,omitempty"` // replica, or the admin key for API actions
}

// Audit appends an audit record; failures are logged, not fatal, because
// the effect itself already happened.
func (p *Pipeline) Audit(ctx context.Context, r AuditRecord) {
	if err := p.AppendAudit(ctx, r); err != nil {
		p.log.Warn("audit append failed", "kind", r.Kind, "conv", r.Conv, "err", err)
	}
}

// AppendAudit appends an audit record and returns the error, for a caller
// that retries (a timer whose firing must leave exactly one record).
func (p *Pipeline) AppendAudit(ctx context.Context, r AuditRecord) error {
	if r.At.IsZero() {
		r.At = p.now()
	}
	if r.Actor == "" {
		r.Actor = p.o.Replica
	}
	b, _ := json.Marshal(r)
	logs := []string{AuditLog}
	// A per-conversation copy answers "what happened to this customer"
	// without scanning the whole trail; both go in one round trip.
	if r.Conv != "" {
		logs = append(logs, ConvAuditLog(r.Conv))
	}
	if _, err := p.o.Store.AppendEach(ctx, logs, b, p.o.AuditRetention); err != nil {
		return fmt.Errorf("audit %s: %w", r.Kind, err)
	}
	return nil
}

// FindAudit reports whether the conversation's audit trail holds a record
// match accepts: how a retried step learns whether a process that died
// after appending its record but before noting so got that far.
func (p *Pipeline) FindAudit(ctx context.Context, conv string, match func(AuditRecord) bool) (bool, error) {
	after := ""
	for {
		recs, next, err := p.o.Store.Range(ctx, ConvAuditLog(conv), store.LogRange{After: after, Limit: 500})
		if err != nil {
			return false, fmt.Errorf("reading the audit trail of %s: %w", conv, err)
		}
		for _, rec := range recs {
			var r AuditRecord
			if json.Unmarshal(rec.Data, &r) == nil && match(r) {
				return true, nil
			}
		}
		if next == "" {
			return false, nil
		}
		after = next
	}
}

// ConvAuditLog is the log name of one conversation's audit trail.
func ConvAuditLog(conv string) string { return "audit:" + conv }

// effectDone returns the recorded result of an effect already done.
func (p *Pipeline) effectDone(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := p.o.Store.Recorded(ctx, EffectKey(key))
	if err != nil || !ok {
		return "", false, err
	}
	return string(v), true, nil
}

// once runs an effect unless its key was already recorded, then records
// it. A crash between the effect and the record repeats the effect on
// retry: plugins that can dedupe on the key (CRMs) close that gap.
func (p *Pipeline) once(ctx context.Context, key string, f func() (string, error)) (result string, already bool, err error) {
	if v, done, err := p.effectDone(ctx, key); err != nil || done {
		return v, done, err
	}
	res, err := f()
	if err != nil {
		return "", false, err
	}
	if err := p.o.Store.Record(ctx, EffectKey(key), []byte(res), p.o.DedupeTTL); err != nil {
		return res, false, fmt.Errorf("record effect %s: %w", key, err)
	}
	return res, false, nil
}

// ---------------------------------------------------------------- helpers

func (p *Pipeline) channel(instance string) (ChannelPlugin, error) {
	c, ok := p.o.Plugins.Channel(instance)
	if !ok {
		return nil, sdk.Permanent(fmt.Errorf("no channel plugin instance %q", instance))
	}
	return c, nil
}

// backoff is the wait before retry n (1-based): doubling from RetryBase,
// capped, ±20% jitter, and never shorter than the plugin's retry-after.
func (p *Pipeline) backoff(n int, err error) time.Duration {
	d := p.o.RetryMax
	if n < 30 {
		d = min(p.o.RetryBase<<(n-1), p.o.RetryMax)
	}
	d = time.Duration(float64(d) * (0.8 + rand.Float64()*0.4))
	if ra := sdk.RetryAfterOf(err); ra > d {
		d = ra
	}
	return d
}
