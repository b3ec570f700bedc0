package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store/embedded"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/rules"
)

type fakeChannel struct {
	mu   sync.Mutex
	sent map[string]time.Time // conversation key → first send
}

func (c *fakeChannel) Send(_ context.Context, m *sdk.Outbound) (*sdk.SendResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.sent[m.ConversationKey]; !ok {
		c.sent[m.ConversationKey] = time.Now()
	}
	return &sdk.SendResult{ProviderMessageID: "p-" + m.IdempotencyKey, AcceptedAt: time.Now()}, nil
}

func (c *fakeChannel) sentAt(conv string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.sent[conv]
	return t, ok
}

// rateLimitedLLM answers every conversation but "slow", which it turns
// away with a long retry-after until allowed.
type rateLimitedLLM struct{ allow chan struct{} }

func (l *rateLimitedLLM) Generate(_ context.Context, req *sdk.GenerateRequest) (*sdk.GenerateResponse, error) {
	if strings.HasSuffix(req.ConversationKey, ":slow") {
		select {
		case <-l.allow:
		default:
			return nil, sdk.RateLimited(errors.New("busy"), 2*time.Second)
		}
	}
	return &sdk.GenerateResponse{Text: "ok"}, nil
}

type fakePlugins struct {
	ch  *fakeChannel
	llm LLMPlugin
}

func (f fakePlugins) Channel(string) (ChannelPlugin, bool) { return f.ch, true }
func (f fakePlugins) CRM(string) (CRMPlugin, bool)         { return nil, false }
func (f fakePlugins) LLM(string) (LLMPlugin, bool)         { return f.llm, true }

// A task waiting out a retry-after does not hold a worker: with one
// worker, another conversation's message is answered meanwhile.
func TestRetryBackoffFreesTheWorker(t *testing.T) {
	st, err := embedded.Open(embedded.Options{Path: filepath.Join(t.TempDir(), "sb.db"), BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ch := &fakeChannel{sent: map[string]time.Time{}}
	llm := &rateLimitedLLM{allow: make(chan struct{})}
	p := New(Options{Store: st, Plugins: fakePlugins{ch: ch, llm: llm}, LLM: "brain", Workers: 1, RetryBase: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx, time.Second); close(done) }()
	defer func() { cancel(); <-done }()
	enqueue := func(key string) {
		t.Helper()
		ev := &sdk.Event{ID: key + "-1", Kind: sdk.EventMessage, ConversationKey: key, Author: sdk.AuthorCustomer,
			Direction: sdk.DirectionInbound, Contact: sdk.Identity{Channel: "test", UserID: key}, Message: &sdk.Message{Type: "text", Text: "xin chào"}}
		if _, err := p.Enqueue(ctx, &Task{Kind: TaskEvent, Instance: "test", Conv: ConvID("test", key), Event: ev, ReceivedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("test:slow")
	enqueue("test:fast")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := ch.sentAt("test:fast"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other conversation was not answered while the first waited for its retry")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok := ch.sentAt("test:slow"); ok {
		t.Fatal("the rate-limited conversation was answered before it was allowed")
	}
	close(llm.allow)
	for {
		if _, ok := ch.sentAt("test:slow"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rate-limited conversation was never answered")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// downLLM fails its first n calls with err.
type downLLM struct {
	mu    sync.Mutex
	n     int
	err   error
	calls int
}

func (l *downLLM) Generate(context.Context, *sdk.GenerateRequest) (*sdk.GenerateResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls <= l.n {
		return nil, l.err
	}
	return &sdk.GenerateResponse{Text: "ok"}, nil
}

// A plugin that is not running (restarting, crash-looping on another
// message) never saw the task: waiting for it costs the message none of
// its attempts, so it is answered when the plugin is back instead of being
// dead-lettered. A plugin that fails the call does cost attempts.
func TestPluginNotRunningCostsNoAttempts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		answer bool
	}{
		{"not running", sdk.Retryable(fmt.Errorf("plugin brain is crash_loop: %w", sdk.ErrNotRunning), time.Millisecond), true},
		{"failing", sdk.Retryable(errors.New("provider 503"), time.Millisecond), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := embedded.Open(embedded.Options{Path: filepath.Join(t.TempDir(), "sb.db"), BatchDelay: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ch := &fakeChannel{sent: map[string]time.Time{}}
			llm := &downLLM{n: 8, err: tc.err}
			p := New(Options{Store: st, Plugins: fakePlugins{ch: ch, llm: llm}, LLM: "brain", RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = p.Run(ctx, time.Second); close(done) }()
			defer func() { cancel(); <-done }()
			ev := &sdk.Event{ID: "m1", Kind: sdk.EventMessage, ConversationKey: "test:c1", Author: sdk.AuthorCustomer,
				Direction: sdk.DirectionInbound, Contact: sdk.Identity{Channel: "test", UserID: "c1"}, Message: &sdk.Message{Type: "text", Text: "xin chào"}}
			if _, err := p.Enqueue(ctx, &Task{Kind: TaskEvent, Instance: "test", Conv: ConvID("test", "test:c1"), Event: ev, ReceivedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, sent := ch.sentAt("test:c1")
				dead, _, _ := st.ListDead(ctx, "", 10)
				if sent || len(dead) > 0 {
					if sent != tc.answer || (len(dead) > 0) == tc.answer {
						t.Fatalf("answered %v, %d dead letters; want answered %v", sent, len(dead), tc.answer)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("neither answered nor dead-lettered")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// textChannel records every text sent.
type textChannel struct {
	mu    sync.Mutex
	texts []string
}

func (c *textChannel) Send(_ context.Context, m *sdk.Outbound) (*sdk.SendResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.texts = append(c.texts, m.Text)
	return &sdk.SendResult{ProviderMessageID: "p-" + m.IdempotencyKey, AcceptedAt: time.Now()}, nil
}

func (c *textChannel) sent(text string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.texts, text)
}

type textPlugins struct {
	ch  *textChannel
	llm LLMPlugin
}

func (f textPlugins) Channel(string) (ChannelPlugin, bool) { return f.ch, true }
func (f textPlugins) CRM(string) (CRMPlugin, bool)         { return nil, false }
func (f textPlugins) LLM(string) (LLMPlugin, bool)         { return f.llm, true }

const handoffRules = `
settings: { timezone: Asia/Ho_Chi_Minh }
agents:
  a1: { name: Agent 1 }
teams:
  t: { strategy: round_robin, members: [a1] }
routing:
  - name: everyone
    when: "true"
    team: t
handoff:
  rules:
    - name: hand over
      when: "true"
      pause_bot: true
      message: "Em chuyển anh/chị sang nhân viên ạ."
followups:
  - name: check back
    when: "true"
    after: 1h
    action: message
    params: { text: "follow-up" }
`

// A turn that handed the conversation over and then failed (here the
// assignment hook; in production a crash right after the state change)
// is finished by its retry: the hook runs again, the follow-up is
// scheduled and the customer gets the handoff message. Before, the retry
// found the conversation with a person and did nothing.
func TestHandoffTurnFinishedByItsRetry(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(handoffRules), 0o644); err != nil {
		t.Fatal(err)
	}
	eng, err := rules.NewEngine(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(embedded.Options{Path: filepath.Join(t.TempDir(), "sb.db"), BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ch := &textChannel{}
	var hookCalls atomic.Int32
	p := New(Options{Store: st, Rules: eng, Plugins: textPlugins{ch: ch, llm: &downLLM{}}, LLM: "brain",
		RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
		Hooks: Hooks{OnHandoff: func(context.Context, *Conversation, *rules.Decision, string) error {
			if hookCalls.Add(1) == 1 {
				return sdk.Retryable(errors.New("injected: the assigner's store blinked"), time.Millisecond)
			}
			return nil
		}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx, time.Second); close(done) }()
	defer func() { cancel(); <-done }()
	conv := ConvID("test", "c1")
	ev := &sdk.Event{ID: "m1", Kind: sdk.EventMessage, ConversationKey: "c1", Author: sdk.AuthorCustomer,
		Direction: sdk.DirectionInbound, Contact: sdk.Identity{Channel: "test", UserID: "c1"}, Message: &sdk.Message{Type: "text", Text: "xin chào"}}
	if _, err := p.Enqueue(ctx, &Task{Kind: TaskEvent, Instance: "test", Conv: conv, Event: ev, ReceivedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !ch.sent("Em chuyển anh/chị sang nhân viên ạ."); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no handoff message after 10 s; hook called %d times", hookCalls.Load())
		}
	}
	if n := hookCalls.Load(); n != 2 {
		t.Errorf("the handoff hook ran %d times, want 2 (failed, then the retry)", n)
	}
	timers, err := st.ClaimDue(ctx, time.Now().Add(2*time.Hour), 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tm := range timers {
		ids = append(ids, tm.ID)
	}
	if !slices.Contains(ids, "fu:"+conv+":check back") {
		t.Errorf("timers %v, want the follow-up", ids)
	}
}
