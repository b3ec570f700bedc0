package assign_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/rules"
)

func TestAddBusiness(t *testing.T) {
	rs := testRules(t).Current()
	biz, _ := rs.Team("biz")
	ex, err := rules.NewEngine("../../examples/rules")
	if err != nil {
		t.Fatal(err)
	}
	sales, _ := ex.Current().Team("sales")
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, hcm)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name  string
		team  rules.Team
		start string
		d     time.Duration
		want  string
	}{
		{"inside hours", biz, "2026-03-11 10:00", 5 * time.Minute, "2026-03-11 10:05"},
		{"across lunch", biz, "2026-03-11 11:58", 5 * time.Minute, "2026-03-11 13:33"},
		{"ends exactly at closing", biz, "2026-03-11 17:25", 5 * time.Minute, "2026-03-11 17:30"},
		{"past closing moves to the next morning", biz, "2026-03-11 17:28", 5 * time.Minute, "2026-03-12 08:03"},
		{"Friday evening to Saturday morning", biz, "2026-03-13 17:29", 5 * time.Minute, "2026-03-14 08:04"},
		{"Saturday noon to Monday", biz, "2026-03-14 11:59", 5 * time.Minute, "2026-03-16 08:04"},
		{"started on Sunday night", biz, "2026-03-15 03:00", 5 * time.Minute, "2026-03-16 08:05"},
		{"started in Tết 2026", biz, "2026-02-17 10:00", time.Minute, "2026-02-23 08:01"},
		{"over Tết 2027", biz, "2027-02-04 17:28", 5 * time.Minute, "2027-02-12 08:03"},
		{"over Giỗ Tổ 2027", biz, "2027-04-15 17:00", time.Hour, "2027-04-17 08:30"},
		{"a day and a quarter of work", biz, "2026-03-11 08:00", 10 * time.Hour, "2026-03-12 10:00"},
		{"shipped rules: sales over Tết 2027", sales, "2027-02-04 17:28", 5 * time.Minute, "2027-02-12 08:03"},
		{"shipped rules: sales on 30/4 2026", sales, "2026-04-29 17:29", 2 * time.Minute, "2026-05-02 08:01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := assign.AddBusiness(tc.team.Hours, at(tc.start), tc.d)
			if want := at(tc.want); !got.Equal(want) {
				t.Errorf("%s + %s = %s, want %s", tc.start, tc.d, got.In(hcm).Format("Mon 2006-01-02 15:04"), want.Format("Mon 2006-01-02 15:04"))
			}
		})
	}
	if got := assign.AddBusiness(nil, at("2026-03-15 03:00"), time.Hour); !got.Equal(at("2026-03-15 04:00")) {
		t.Errorf("always open: %s", got)
	}
}

func BenchmarkAddBusiness(b *testing.B) {
	rs := testRules(b).Current()
	biz, _ := rs.Team("biz")
	start := time.Date(2026, 3, 13, 17, 28, 0, 0, hcm)
	for b.Loop() {
		assign.AddBusiness(biz.Hours, start, 5*time.Minute)
	}
}

// noPlugins: these tests never get as far as a plugin.
type noPlugins struct{}

func (noPlugins) Channel(string) (pipeline.ChannelPlugin, bool) { return nil, false }
func (noPlugins) CRM(string) (pipeline.CRMPlugin, bool)         { return nil, false }
func (noPlugins) LLM(string) (pipeline.LLMPlugin, bool)         { return nil, false }

// recNotifier records notifications; every one goes to the webhook route.
type recNotifier struct {
	mu sync.Mutex
	ns []assign.Notification
}

func (r *recNotifier) Notify(_ context.Context, n *assign.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ns = append(r.ns, *n)
	return nil
}

func (r *recNotifier) find(kind, agent string) []assign.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []assign.Notification
	for _, n := range r.ns {
		if n.Kind == kind && n.Agent == agent {
			out = append(out, n)
		}
	}
	return out
}

// slaHub is a pipeline running on a real store with a controllable clock,
// and an Assigner installed on it.
type slaHub struct {
	probes chan string
	nprobe int
	clk    *clock
	p      *pipeline.Pipeline
	a      *assign.Assigner
	notes  *recNotifier
	reg    *prometheus.Registry
}

func startSLAHub(t *testing.T, st store.Store, start time.Time, o assign.Options) *slaHub {
	t.Helper()
	h := &slaHub{clk: newClock(start), notes: &recNotifier{}, reg: prometheus.NewRegistry()}
	eng := testRules(t)
	h.p = pipeline.New(pipeline.Options{Store: st, Rules: eng, Plugins: noPlugins{}, Now: h.clk.Now, Replica: "sla-test"})
	o.Rules, o.Pipeline, o.Now, o.Notifier, o.Registerer = eng.Current, h.p, h.clk.Now, h.notes, h.reg
	h.a = newAssigner(t, st, o)
	if err := h.a.Install(); err != nil {
		t.Fatal(err)
	}
	h.probes = make(chan string, 16)
	h.p.HandleTimers("test_probe", func(_ context.Context, raw json.RawMessage) error {
		var id string
		_ = json.Unmarshal(raw, &id)
		h.probes <- id
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.p.Run(ctx, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// timerRound returns once the pipeline has claimed and handled every timer
// due at the clock's current time: a probe timer due now fires after
// them (timers are claimed earliest first), so what did not fire by then
// was not due.
func (h *slaHub) timerRound(t *testing.T) {
	t.Helper()
	h.nprobe++
	id := fmt.Sprintf("probe-%d", h.nprobe)
	if err := h.p.Schedule(context.Background(), id, h.clk.Now(), "test_probe", id); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-h.probes:
			if got == id {
				return
			}
		case <-timeout:
			t.Fatalf("probe timer %s never fired", id)
		}
	}
}

// handOff creates a conversation handed to team and submits it.
func (h *slaHub) handOff(t *testing.T, conv, team, priority string) *assign.Assignment {
	t.Helper()
	ctx := context.Background()
	_, err := h.p.Conversations().Update(ctx, conv, func() *pipeline.Conversation {
		return &pipeline.Conversation{Instance: "t", Channel: "test", Key: conv, Contact: sdk.Identity{Channel: "test", UserID: conv, DisplayName: "Chị Mai"}}
	}, func(c *pipeline.Conversation) error {
		c.State, c.HandedOffAt, c.Team, c.Priority = pipeline.StateHandedOff, h.clk.Now(), team, priority
		c.Facts.Need, c.ContactURL = "máy lọc nước", "https://crm.example/contacts/1"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return must[*assign.Assignment](t)(h.a.Submit(ctx, assign.Request{Conv: conv, Team: team, Priority: priority, Since: h.clk.Now()}))
}

func (h *slaHub) event(t *testing.T, conv, id string, author sdk.Author, text string) {
	t.Helper()
	_, err := h.p.Enqueue(context.Background(), &pipeline.Task{Kind: pipeline.TaskEvent, Instance: "t", Conv: conv,
		Event: &sdk.Event{ID: id, Kind: sdk.EventMessage, ConversationKey: conv, Author: author, Timestamp: h.clk.Now(),
			Contact: sdk.Identity{Channel: "test", UserID: conv}, Message: &sdk.Message{Type: "text", Text: text}}})
	if err != nil {
		t.Fatal(err)
	}
}

func (h *slaHub) record(t *testing.T, conv string) *assign.Record {
	t.Helper()
	return must[*assign.Record](t)(h.a.Record(context.Background(), conv))
}

// TestSLAEscalation: a missed first response goes to the next agent of
// the team, a second miss to the escalation team, the supervisor hears of
// each; the agent's reply then counts as the first response.
func TestSLAEscalation(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		wed10 := time.Date(2026, 3, 11, 10, 0, 0, 0, hcm)
		h := startSLAHub(t, st, wed10, assign.Options{})
		res := h.handOff(t, "t:1", "biz", "normal")
		if res.Agent != "b1" {
			t.Fatalf("first assignment: %+v", res)
		}
		if r := h.record(t, "t:1"); !r.Deadline.Equal(wed10.Add(5*time.Minute)) || r.DeadlineKind != assign.KindFirst {
			t.Fatalf("deadline %s (%s)", r.Deadline, r.DeadlineKind)
		}
		if len(h.notes.find("assignment", "b1")) == 0 {
			eventually(t, 5*time.Second, "b1's notification", func() bool { return len(h.notes.find("assignment", "b1")) > 0 })
		}

		h.clk.Advance(4 * time.Minute)
		h.timerRound(t)
		if r := h.record(t, "t:1"); r.Assignee != "b1" || len(r.Breaches) != 0 {
			t.Fatalf("escalated before the deadline: %+v", r)
		}

		h.clk.Advance(time.Minute + time.Second) // 10:05:01: b1 missed it
		eventually(t, 5*time.Second, "reassignment to b2", func() bool { return h.record(t, "t:1").Assignee == "b2" })
		r := h.record(t, "t:1")
		if len(r.Breaches) != 1 || r.Breaches[0].Agent != "b1" || r.Breaches[0].Kind != assign.KindFirst || r.Tried[0] != "b1" {
			t.Fatalf("after the first miss: %+v", r)
		}
		if want := h.clk.Now().Add(5 * time.Minute); !r.Deadline.Equal(want) {
			t.Fatalf("b2's deadline %s, want %s", r.Deadline, want)
		}
		eventually(t, 5*time.Second, "the supervisor hears of the breach", func() bool { return len(h.notes.find("sla_breach", "s1")) == 1 })
		if b1 := must[assign.AgentState](t)(h.a.Agent(context.Background(), "b1")); b1.Load != 0 {
			t.Fatalf("b1 kept the slot: %+v", b1)
		}

		h.clk.Advance(5*time.Minute + time.Second) // b2 missed it too
		eventually(t, 5*time.Second, "escalation to the escalation team", func() bool { return h.record(t, "t:1").Assignee == "e1" })
		r = h.record(t, "t:1")
		if r.Team != "esc" || len(r.Breaches) != 2 || r.Breaches[1].Agent != "b2" {
			t.Fatalf("after the second miss: %+v", r)
		}
		eventually(t, 5*time.Second, "the supervisor hears of the second breach", func() bool { return len(h.notes.find("sla_breach", "s1")) == 2 })
		eventually(t, 5*time.Second, "e1's notification", func() bool {
			ns := h.notes.find("assignment", "e1")
			return len(ns) == 1 && ns[0].Summary != nil && ns[0].Summary.ContactURL == "https://crm.example/contacts/1"
		})
		pc, _, err := h.p.Conversations().Get(context.Background(), "t:1")
		if err != nil || pc.Assignee != "e1" || pc.Team != "esc" {
			t.Fatalf("pipeline conversation: %+v %v", pc, err)
		}

		// e1 answers: the first response, 11m02s after the handoff.
		h.clk.Advance(time.Minute)
		h.event(t, "t:1", "agent-1", sdk.AuthorAgent, "Dạ em chào chị")
		eventually(t, 5*time.Second, "the first response", func() bool { return !h.record(t, "t:1").FirstResponseAt.IsZero() })
		r = h.record(t, "t:1")
		if r.FirstResponse != 11*time.Minute+2*time.Second || !r.Deadline.IsZero() {
			t.Fatalf("after the reply: %+v", r)
		}
		if n := metricValue(t, h.reg, "switchboard_sla_breaches_total", "team=biz", "kind=first_response"); n != 2 {
			t.Errorf("breaches metric %v, want 2", n)
		}
		if n := metricValue(t, h.reg, "switchboard_first_response_seconds", "team=esc"); n != 1 {
			t.Errorf("first responses observed for esc: %v", n)
		}
	})
}

// metricValue reads a counter's value, or a histogram's count, of the
// series with the given labels ("name=value").
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			have := map[string]bool{}
			for _, l := range m.Label {
				have[l.GetName()+"="+l.GetValue()] = true
			}
			ok := true
			for _, l := range labels {
				ok = ok && have[l]
			}
			if !ok {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestSLAOutsideHours: a handoff just before closing gets a deadline at the
// next opening, over a holiday (Tết 2027), and nothing escalates before it.
func TestSLAOutsideHours(t *testing.T) {
	st := openEmbedded(t)
	thu := time.Date(2027, 2, 4, 17, 28, 0, 0, hcm)
	h := startSLAHub(t, st, thu, assign.Options{})
	if res := h.handOff(t, "t:tet", "biz", "normal"); res.Agent != "b1" {
		t.Fatalf("%+v", res)
	}
	want := time.Date(2027, 2, 12, 8, 3, 0, 0, hcm)
	if r := h.record(t, "t:tet"); !r.Deadline.Equal(want) {
		t.Fatalf("deadline %s, want %s", r.Deadline.In(hcm), want)
	}
	h.clk.Advance(want.Sub(thu) - time.Minute) // Fri 12 Feb 08:02: Tết is over, 1 minute left
	h.timerRound(t)
	if r := h.record(t, "t:tet"); r.Assignee != "b1" || len(r.Breaches) != 0 {
		t.Fatalf("escalated during Tết: %+v", r)
	}
	h.clk.Advance(2 * time.Minute)
	eventually(t, 5*time.Second, "the breach after the holiday", func() bool { return len(h.record(t, "t:tet").Breaches) == 1 })

	// Out of hours nobody is available: the conversation waits, and its
	// first-response deadline runs from the handoff in business time.
	sat := time.Date(2026, 3, 14, 12, 30, 0, 0, hcm)
	h2 := startSLAHub(t, openEmbedded(t), sat, assign.Options{})
	res := h2.handOff(t, "t:sat", "biz", "urgent")
	if !res.Queued {
		t.Fatalf("assigned out of hours: %+v", res)
	}
	if r := h2.record(t, "t:sat"); !r.Deadline.Equal(time.Date(2026, 3, 16, 8, 1, 0, 0, hcm)) {
		t.Fatalf("waiting deadline %s", r.Deadline.In(hcm))
	}
	// Monday 08:00: the team opens and the periodic drain assigns it.
	h2.clk.Advance(time.Date(2026, 3, 16, 8, 0, 0, 0, hcm).Sub(sat))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h2.a.Run(ctx)
	eventually(t, 10*time.Second, "assignment when the team opens", func() bool { return h2.record(t, "t:sat").Assignee != "" })
}

// TestNextResponseAndIdle: after the first reply, a customer message starts
// the next-response clock; a missed one reassigns. With release_after, a
// conversation no agent writes in goes back to the bot and frees the slot.
func TestNextResponseAndIdle(t *testing.T) {
	st := openEmbedded(t)
	wed := time.Date(2026, 3, 11, 9, 0, 0, 0, hcm)
	h := startSLAHub(t, st, wed, assign.Options{ReleaseAfter: 30 * time.Minute})
	h.handOff(t, "t:n", "biz", "normal")
	h.clk.Advance(2 * time.Minute)
	h.event(t, "t:n", "ag-1", sdk.AuthorAgent, "Dạ em nghe")
	eventually(t, 5*time.Second, "first response", func() bool { return h.record(t, "t:n").FirstResponse == 2*time.Minute })

	h.clk.Advance(time.Minute)
	h.event(t, "t:n", "cu-1", sdk.AuthorCustomer, "Giá bao nhiêu?")
	eventually(t, 5*time.Second, "the next-response deadline", func() bool { return h.record(t, "t:n").DeadlineKind == assign.KindNext })
	if r := h.record(t, "t:n"); !r.Deadline.Equal(h.clk.Now().Add(15 * time.Minute)) {
		t.Fatalf("next-response deadline %s", r.Deadline)
	}
	h.clk.Advance(16 * time.Minute)
	eventually(t, 5*time.Second, "reassignment after a missed next response", func() bool { return h.record(t, "t:n").Assignee == "b2" })
	if r := h.record(t, "t:n"); r.Breaches[0].Kind != assign.KindNext {
		t.Fatalf("%+v", r)
	}

	// Nobody writes for 30 minutes since the last agent message: released.
	h.clk.Advance(15 * time.Minute)
	eventually(t, 5*time.Second, "idle release", func() bool {
		pc, _, err := h.p.Conversations().Get(context.Background(), "t:n")
		return err == nil && pc.State == pipeline.StateBot && pc.Assignee == ""
	})
	if r := h.record(t, "t:n"); r.State != assign.RecReleased {
		t.Fatalf("%+v", r)
	}
	// The slot is freed just after the state changes: wait for it.
	eventually(t, 5*time.Second, "the agents' slots freed", func() bool {
		for _, id := range []string{"b1", "b2"} {
			if s := must[assign.AgentState](t)(h.a.Agent(context.Background(), id)); s.Load != 0 {
				return false
			}
		}
		return true
	})
}

// TestWebhookNotifications: the outgoing webhook is signed over the raw
// body, retried with backoff on failure through the timers, and delivered
// once per key.
func TestWebhookNotifications(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	fail := 2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
		bodies = append(bodies, b)
		if fail > 0 {
			fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	st := openEmbedded(t)
	wed := time.Date(2026, 3, 11, 9, 0, 0, 0, hcm)
	h := startSLAHub(t, st, wed, assign.Options{})
	d := &assign.Dispatcher{WebhookURL: srv.URL, WebhookSecret: "s3cret", Now: h.clk.Now}
	reg := prometheus.NewRegistry()
	h.a = newAssigner(t, st, assign.Options{Rules: testRules(t).Current, Pipeline: h.p, Now: h.clk.Now, Notifier: d, Registerer: reg})
	if err := h.a.Install(); err != nil {
		t.Fatal(err)
	}
	h.handOff(t, "t:w", "biz", "normal")
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	// A retry is scheduled from the clock's time once the failure is back,
	// a moment after the server saw the request: advance only after that.
	retries := func() int { return int(metricValue(t, reg, "switchboard_notifications_total", "result=retry")) }
	eventually(t, 30*time.Second, "first attempt and its retry scheduled", func() bool { return count() == 1 && retries() == 1 })
	h.clk.Advance(5 * time.Second)
	eventually(t, 30*time.Second, "second attempt after 5s and its retry scheduled", func() bool { return count() == 2 && retries() == 2 })
	h.clk.Advance(9 * time.Second)
	h.timerRound(t)
	if count() != 2 {
		t.Fatalf("retried before the 10s backoff: %d", count())
	}
	h.clk.Advance(time.Second)
	eventually(t, 30*time.Second, "third attempt after 10s more", func() bool { return count() == 3 })
	h.clk.Advance(time.Minute) // well before the SLA deadline's own notifications
	h.timerRound(t)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d deliveries, want 3 (2 failures, 1 success)", len(got))
	}
	for i, r := range got {
		if !assign.VerifySignature("s3cret", bodies[i], r.Header.Get(assign.HeaderSignature)) {
			t.Errorf("attempt %d: bad signature %q", i, r.Header.Get(assign.HeaderSignature))
		}
		if r.Header.Get(assign.HeaderTimestamp) == "" || r.Header.Get(assign.HeaderDelivery) != got[0].Header.Get(assign.HeaderDelivery) {
			t.Errorf("attempt %d headers: %v", i, r.Header)
		}
	}
	if assign.VerifySignature("wrong", bodies[2], got[2].Header.Get(assign.HeaderSignature)) {
		t.Error("a wrong secret verifies")
	}
}

// auditFault fails the appends of sla_breach audit records while set:
// "before" without writing (the process died before its append), "after"
// once written (it died after the append, before noting it).
type auditFault struct {
	store.Store
	mode atomic.Value // "", "before", "after"
}

func (f *auditFault) AppendEach(ctx context.Context, logs []string, rec []byte, retention time.Duration) ([]string, error) {
	mode, _ := f.mode.Load().(string)
	if mode == "" || !strings.Contains(string(rec), `"kind":"sla_breach"`) {
		return f.Store.AppendEach(ctx, logs, rec, retention)
	}
	if mode == "after" {
		if _, err := f.Store.AppendEach(ctx, logs, rec, retention); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("injected: the process died here")
}

// A breach is audited exactly once although the firing that recorded it
// died before or after writing its audit record: the timer fires again
// after its claim lease, finds the breach recorded but not audited, and
// looks in the conversation's trail before writing.
func TestSLABreachAuditedOnceAcrossAFailedFiring(t *testing.T) {
	for _, mode := range []string{"before", "after"} {
		t.Run(mode, func(t *testing.T) {
			eachStore(t, func(t *testing.T, st store.Store) {
				f := &auditFault{Store: st}
				wed10 := time.Date(2026, 3, 11, 10, 0, 0, 0, hcm)
				h := startSLAHub(t, f, wed10, assign.Options{})
				if res := h.handOff(t, "t:1", "biz", "normal"); res.Agent != "b1" {
					t.Fatalf("first assignment: %+v", res)
				}
				f.mode.Store(mode)
				h.clk.Advance(5*time.Minute + time.Second)
				eventually(t, 5*time.Second, "the breach recorded", func() bool { return len(h.record(t, "t:1").Breaches) == 1 })
				h.timerRound(t)
				if r := h.record(t, "t:1"); r.Breaches[0].Audited || r.Assignee != "b1" {
					t.Fatalf("after the failed firing: %+v", r)
				}
				f.mode.Store("")
				h.clk.Advance(31 * time.Second) // the failed firing's claim lease ends
				eventually(t, 5*time.Second, "the breach audited and escalated", func() bool {
					r := h.record(t, "t:1")
					return r.Breaches[0].Audited && r.Assignee == "b2"
				})
				recs, _, err := st.Range(context.Background(), pipeline.AuditLog, store.LogRange{Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, rec := range recs {
					var a pipeline.AuditRecord
					if json.Unmarshal(rec.Data, &a) == nil && a.Kind == "sla_breach" && a.Conv == "t:1" {
						n++
					}
				}
				if n != 1 {
					t.Fatalf("%d sla_breach audit records, want 1", n)
				}
			})
		})
	}
}
