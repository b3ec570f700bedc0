package assign_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
	"github.com/switchboard-hub/switchboard/rules"
)

// taskCRM is the test CRM plugin's code, in process, remembering the
// tasks it was asked to create.
type taskCRM struct {
	*testplugins.CRM
	mu    sync.Mutex
	tasks []sdk.Task
}

func (c *taskCRM) CreateTask(ctx context.Context, key string, t *sdk.Task) (*sdk.Task, error) {
	c.mu.Lock()
	c.tasks = append(c.tasks, *t)
	c.mu.Unlock()
	return c.CRM.CreateTask(ctx, key, t)
}

func (c *taskCRM) Tasks() []sdk.Task {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sdk.Task(nil), c.tasks...)
}

type inProc struct {
	ch  *testplugins.Channel
	crm *taskCRM
}

func (p inProc) Channel(name string) (pipeline.ChannelPlugin, bool) { return p.ch, name == "t" }
func (p inProc) CRM(name string) (pipeline.CRMPlugin, bool)         { return p.crm, name == "crm" }
func (p inProc) LLM(string) (pipeline.LLMPlugin, bool)              { return nil, false }

// TestFollowups: each follow-up of a decision runs on the Store's timers at
// its time: a CRM task owned by the assignee, a note, a reminder (dropped
// when its cancel_when holds then), a message to the customer; a timer
// that fires again repeats nothing.
func TestFollowups(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var sent []testplugins.SentMessage
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m testplugins.SentMessage
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		sent = append(sent, m)
		mu.Unlock()
	}))
	defer sink.Close()
	ch := testplugins.NewChannel()
	cfg, _ := json.Marshal(testplugins.ChannelConfig{Secret: "s", SinkURL: sink.URL})
	if err := ch.Configure(ctx, sdk.ConfigureRequest{Instance: "t", Config: cfg}); err != nil {
		t.Fatal(err)
	}
	crm := &taskCRM{CRM: testplugins.NewCRM()}
	plugins := inProc{ch: ch, crm: crm}

	st := openEmbedded(t)
	eng := testRules(t)
	clk := newClock(time.Date(2026, 3, 11, 9, 0, 0, 0, hcm))
	p := pipeline.New(pipeline.Options{Store: st, Rules: eng, Plugins: plugins, CRM: "crm", Now: clk.Now, Replica: "fu-test"})
	notes := &recNotifier{}
	reg := prometheus.NewRegistry()
	a := newAssigner(t, st, assign.Options{Rules: eng.Current, Pipeline: p, Now: clk.Now, Notifier: notes, Registerer: reg})
	if err := a.Install(); err != nil {
		t.Fatal(err)
	}
	h := &slaHub{clk: clk, p: p, a: a, notes: notes, reg: reg, probes: make(chan string, 16)}
	p.HandleTimers("test_probe", func(_ context.Context, raw json.RawMessage) error {
		var id string
		_ = json.Unmarshal(raw, &id)
		h.probes <- id
		return nil
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(runCtx, time.Second) }()
	defer func() { cancel(); <-done }()

	contact := must[*sdk.UpsertContactResult](t)(crm.UpsertContact(ctx, &sdk.UpsertContactRequest{Contact: sdk.Contact{Name: "Chị Mai",
		Identities: []sdk.Identity{{Channel: "test", UserID: "mai"}}}}))
	const conv = "t:mai"
	if _, err := p.Conversations().Update(ctx, conv, func() *pipeline.Conversation {
		return &pipeline.Conversation{Instance: "t", Channel: "test", Key: "mai", Contact: sdk.Identity{Channel: "test", UserID: "mai"}}
	}, func(c *pipeline.Conversation) error {
		c.State, c.Team, c.Assignee, c.ContactID = pipeline.StateHuman, "biz", "b1", contact.Contact.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The decision the pipeline would make for "gọi lại cho tôi", scheduled
	// the way it schedules follow-ups.
	d := must[*rules.Decision](t)(eng.Evaluate(rules.Input{Now: clk.Now(), Message: rules.Message{Text: "Chiều nay gọi lại cho tôi nhé"}}))
	if len(d.Followups) != 5 {
		t.Fatalf("followups: %+v", d.Followups)
	}
	schedule := func() {
		for _, f := range d.Followups {
			if err := p.Schedule(ctx, "fu:"+conv+":"+f.Name, f.At, assign.TimerFollowup, pipeline.FollowupTimer{Conv: conv, Inbound: "m1", Followup: f}); err != nil {
				t.Fatal(err)
			}
		}
	}
	schedule()
	count := func(action, result string) float64 {
		return metricValue(t, reg, "switchboard_followups_total", "action="+action, "result="+result)
	}

	clk.Advance(15 * time.Minute)
	eventually(t, 5*time.Second, "the call task", func() bool { return len(crm.Tasks()) == 1 })
	task := crm.Tasks()[0]
	if task.OwnerID != "b1" || task.Type != "call" || task.Title != "Gọi lại cho khách" || task.ContactID != contact.Contact.ID ||
		!task.DueAt.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("task %+v", task)
	}
	clk.Advance(5 * time.Minute)
	eventually(t, 5*time.Second, "the note", func() bool { return count("note", "done") == 1 })

	// The agent called back: the supervisor's reminder is dropped at 2h,
	// the assignee's (no cancel_when) still comes at 3h.
	if _, err := p.Conversations().Update(ctx, conv, nil, func(c *pipeline.Conversation) error {
		c.LastAgentAt = clk.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(100 * time.Minute)
	eventually(t, 5*time.Second, "the supervisor's reminder cancelled", func() bool { return count("reminder", "cancelled") == 1 })
	if n := notes.find("reminder", "s1"); len(n) != 0 {
		t.Fatalf("a cancelled reminder was sent: %+v", n)
	}
	clk.Advance(time.Hour)
	eventually(t, 5*time.Second, "the assignee's reminder", func() bool { return len(notes.find("reminder", "b1")) == 1 })
	if n := notes.find("reminder", "b1")[0]; n.Text == "" || n.Conv != conv {
		t.Fatalf("reminder %+v", n)
	}

	clk.Advance(24 * time.Hour)
	eventually(t, 5*time.Second, "the message to the customer", func() bool { mu.Lock(); defer mu.Unlock(); return len(sent) == 1 })
	mu.Lock()
	if m := sent[0]; m.To != "mai" || m.Text != "Anh/chị còn cần hỗ trợ gì không ạ?" || m.ConversationKey != "mai" {
		t.Errorf("message %+v", m)
	}
	mu.Unlock()

	// Every timer fires again (a replica died before marking it done):
	// nothing is repeated.
	schedule()
	h.timerRound(t)
	if len(crm.Tasks()) != 1 || len(notes.find("reminder", "b1")) != 1 {
		t.Fatalf("repeated: %d tasks, %d reminders", len(crm.Tasks()), len(notes.find("reminder", "b1")))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 {
		t.Fatalf("the message went %d times", len(sent))
	}
}
