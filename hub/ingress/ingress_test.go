package ingress

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/hub/store/embedded"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// batchChannel answers every webhook with events: convs conversations,
// perConv messages each, interleaved as a provider's batch would be.
type batchChannel struct{ convs, perConv int }

func (b batchChannel) HandleWebhook(_ context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	res := &sdk.WebhookResult{Response: sdk.WebhookResponse{Status: 200, Body: []byte("ok")}}
	for s := range b.perConv {
		for c := range b.convs {
			res.Events = append(res.Events, sdk.Event{ID: fmt.Sprintf("c%d-m%d", c, s), Kind: sdk.EventMessage,
				ConversationKey: fmt.Sprintf("k%d", c), Author: sdk.AuthorCustomer, Direction: sdk.DirectionInbound,
				Contact: sdk.Identity{Channel: "test", UserID: fmt.Sprintf("u%d", c)}, Message: &sdk.Message{Type: "text", Text: "xin chào"},
				Timestamp: req.ReceivedAt})
		}
	}
	return res, nil
}

func newHandler(t testing.TB, st store.Store, ch Channel) *fiber.App {
	t.Helper()
	p := pipeline.New(pipeline.Options{Store: st})
	h := New(Options{Channels: func(string) (Channel, bool) { return ch, true }, Pipeline: p, Store: st,
		Logger: slog.New(slog.DiscardHandler)})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	h.Register(app)
	return app
}

// A provider's batch of thousands of messages is stored whole and
// acknowledged, each conversation's messages in order, even on the
// embedded store whose every commit is synced: storing takes longer than
// the plugin's time limit, which must not cut it short (that was a 503
// for the same batch on every retry).
func TestLargeBatchStoredInOrder(t *testing.T) {
	st, err := embedded.Open(embedded.Options{Path: filepath.Join(t.TempDir(), "sb.db"), BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const convs, perConv = 300, 10
	app := newHandler(t, st, batchChannel{convs, perConv})
	req, _ := http.NewRequest(http.MethodPost, "/webhooks/test", strings.NewReader("{}"))
	resp, err := app.Test(req, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if n, _ := st.Depth(context.Background()); n != convs*perConv {
		t.Fatalf("%d entries queued, want %d", n, convs*perConv)
	}
	next := map[string]int{}
	for p := range st.Partitions() {
		for {
			es, err := st.Read(context.Background(), p, "test", 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				var task pipeline.Task
				if err := json.Unmarshal(e.Payload, &task); err != nil {
					t.Fatal(err)
				}
				var c, m int
				fmt.Sscanf(task.Event.ID, "c%d-m%d", &c, &m)
				if m != next[task.Conv] {
					t.Fatalf("%s: message %d queued where %d was due", task.Conv, m, next[task.Conv])
				}
				next[task.Conv]++
			}
		}
	}
	if len(next) != convs {
		t.Errorf("%d conversations queued, want %d", len(next), convs)
	}
}

// farFuture is a channel whose event time is past year 9999.
type farFuture struct{}

func (farFuture) HandleWebhook(_ context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	return &sdk.WebhookResult{Response: sdk.WebhookResponse{Status: 200}, Events: []sdk.Event{{ID: "m1", Kind: sdk.EventMessage,
		ConversationKey: "k1", Author: sdk.AuthorCustomer, Message: &sdk.Message{Type: "text", Text: "hi"},
		Timestamp: time.UnixMilli(999999999999999999)}}}, nil
}

// An event time JSON cannot carry (a plugin that let one through) is
// replaced by the time the request arrived: the message is queued, not
// refused with a 503 on every retry.
func TestEventTimeOutOfRange(t *testing.T) {
	st, err := embedded.Open(embedded.Options{Path: filepath.Join(t.TempDir(), "sb.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	req, _ := http.NewRequest(http.MethodPost, "/webhooks/test", strings.NewReader("{}"))
	resp, err := newHandler(t, st, farFuture{}).Test(req, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	es, err := st.Read(context.Background(), st.PartitionOf("test:k1"), "test", 10, 0)
	if err != nil || len(es) != 1 {
		t.Fatalf("%d entries, %v", len(es), err)
	}
	var task pipeline.Task
	if err := json.Unmarshal(es[0].Payload, &task); err != nil {
		t.Fatal(err)
	}
	if !task.Event.Timestamp.Equal(task.ReceivedAt) {
		t.Errorf("event time %s, want the time it arrived %s", task.Event.Timestamp, task.ReceivedAt)
	}
}

// nopStore takes the writes of the ingest path and forgets them, so the
// benchmark measures the hub's own code.
type nopStore struct{ store.Store }

func (nopStore) PartitionOf(string) int { return 0 }
func (nopStore) Enqueue(context.Context, string, []byte) (string, error) {
	return "1", nil
}
func (nopStore) GetCounter(context.Context, string) (int64, error) { return 0, nil }
func (nopStore) Append(context.Context, string, []byte, time.Duration) (string, error) {
	return "1-0", nil
}

// oneEvent is a channel that verifies nothing and returns one message.
type oneEvent struct{}

func (oneEvent) HandleWebhook(_ context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	return &sdk.WebhookResult{Response: sdk.WebhookResponse{Status: 200, Body: []byte("ok")},
		Events: []sdk.Event{{ID: "m1", Kind: sdk.EventMessage, ConversationKey: "k1", Author: sdk.AuthorCustomer,
			Direction: sdk.DirectionInbound, Contact: sdk.Identity{Channel: "test", UserID: "u1"},
			Message: &sdk.Message{Type: "text", Text: "Chào shop, cho mình hỏi giá gói Pro?"}, Timestamp: req.ReceivedAt}}}, nil
}

// BenchmarkWebhook is the hub's part of the ingest hot path, allocations
// included: fiber routing, copying the request for the plugin, the task
// encoding, the queue write and the raw log record, with the plugin call
// and the store's I/O left out (an in-process channel, a store that
// discards; see bench/ for the whole hub).
func BenchmarkWebhook(b *testing.B) {
	body := []byte(`{"app_id":"360846524940903967","event_name":"user_send_text","sender":{"id":"2468013579"},"recipient":{"id":"388613280878808645"},"message":{"text":"Chào shop, cho mình hỏi giá gói Pro?","msg_id":"f1a2b3"},"timestamp":"1764500000000"}`)
	for _, tc := range []struct {
		name string
		st   func(b *testing.B) store.Store
	}{
		{"discard", func(*testing.B) store.Store { return nopStore{} }},
		{"embedded-nosync", func(b *testing.B) store.Store {
			st, err := embedded.Open(embedded.Options{Path: filepath.Join(b.TempDir(), "sb.db"), NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHandler(b, tc.st(b), oneEvent{}).Handler()
			addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				var req fasthttp.Request
				req.Header.SetMethod(fasthttp.MethodPost)
				req.SetRequestURI("/webhooks/zalo")
				req.Header.SetContentType("application/json")
				req.Header.Set("X-ZEvent-Signature", "mac=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
				req.SetBodyRaw(body)
				var c fasthttp.RequestCtx
				c.Init(&req, addr, nil)
				h(&c)
				if c.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", c.Response.StatusCode(), c.Response.Body())
				}
			}
		})
	}
}
