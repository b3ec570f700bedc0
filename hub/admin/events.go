package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// Event is one item of the live stream.
type Event struct {
	Type   string    `json:"type"` // message, assignment, handoff, sla_breach, release, close, state, ...
	Kind   string    `json:"kind"` // the audit record's kind
	Conv   string    `json:"conv,omitempty"`
	At     time.Time `json:"at"`
	Target string    `json:"target,omitempty"`
	Score  int       `json:"score,omitempty"`
	Tier   string    `json:"tier,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Actor  string    `json:"actor,omitempty"`
}

// eventType groups the audit kinds into the events dashboards follow.
func eventType(kind string) string {
	switch {
	case kind == "message" || kind == "message_received" || kind == "reply_sent" || kind == "agent_message":
		return "message"
	case strings.Contains(kind, "sla") || strings.Contains(kind, "breach"):
		return "sla_breach"
	case strings.HasPrefix(kind, "assign") || kind == "reassignment" || kind == "takeover" || kind == "queued":
		return "assignment"
	case strings.HasPrefix(kind, "handoff"):
		return "handoff"
	}
	return kind
}

// events streams the effects audit trail as Server-Sent Events. Every hub
// replica writes that trail into the shared Store, so tailing it with a
// cursor gives each client every replica's events with no broker. The
// event id is the record's id: a reconnecting EventSource sends it back as
// Last-Event-ID and resumes where it stopped. Without one the stream starts
// now. ?types=message,handoff keeps only those types. Agent keys see only
// the events of conversations assigned to them.
func (api *API) events(c *fiber.Ctx) error {
	p := principal(c)
	after := firstNonEmpty(c.Get("Last-Event-ID"), c.Query("after"))
	var types map[string]bool
	if s := c.Query("types"); s != "" {
		types = map[string]bool{}
		for _, t := range strings.Split(s, ",") {
			types[strings.TrimSpace(t)] = true
		}
	}
	from := time.Time{}
	if after == "" {
		from = api.now()
	}
	// Check the cursor now, while a problem response is still possible.
	if _, _, err := api.st.Range(c.UserContext(), pipeline.AuditLog, store.LogRange{From: from, After: after, Limit: 1}); err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return invalid("Last-Event-ID", "not an event id this stream sent")
		}
		return err
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	t := &tail{api: api, p: *p, after: after, from: from, types: types, seen: map[string]seenConv{},
		done: c.Context().Done(), conn: c.Context().Conn()}
	c.Context().SetBodyStreamWriter(t.run)
	return nil
}

// tail is one client's stream. It must not touch the fiber.Ctx: the
// stream writer runs after the handler returned.
type tail struct {
	api   *API
	p     Principal
	after string
	from  time.Time
	types map[string]bool
	seen  map[string]seenConv // agent keys: conversation → assignee, briefly cached
	done  <-chan struct{}     // closed when the server shuts down
	conn  net.Conn
}

type seenConv struct {
	assignee string
	at       time.Time
}

func (t *tail) run(w *bufio.Writer) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-t.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	fmt.Fprintf(w, "retry: 2000\n: stream of %s\n\n", pipeline.AuditLog)
	if !t.flush(w) {
		return
	}
	poll := time.NewTicker(t.api.o.EventPoll)
	defer poll.Stop()
	lastBeat, lastAuth := time.Now(), time.Now()
	for {
		n, err := t.pump(ctx, w)
		if err != nil {
			return
		}
		if n > 0 && !t.flush(w) {
			return
		}
		if time.Since(lastBeat) >= t.api.o.Heartbeat {
			// Comments keep proxies from closing an idle stream, and a write
			// is how a gone client is noticed.
			fmt.Fprintf(w, ": keep-alive\n\n")
			if !t.flush(w) {
				return
			}
			lastBeat = time.Now()
		}
		if time.Since(lastAuth) >= time.Minute {
			// A key revoked or expired while streaming stops the stream.
			if !t.stillValid(ctx) {
				fmt.Fprintf(w, "event: end\ndata: {\"reason\":\"key no longer valid\"}\n\n")
				t.flush(w)
				return
			}
			lastAuth = time.Now()
		}
		if n == pumpBatch {
			continue // more waiting
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
}

const pumpBatch = 200

// pump writes the records after the cursor; it returns how many it read.
func (t *tail) pump(ctx context.Context, w *bufio.Writer) (int, error) {
	recs, _, err := t.api.st.Range(ctx, pipeline.AuditLog, store.LogRange{From: t.from, After: t.after, Limit: pumpBatch})
	if err != nil {
		if ctx.Err() != nil {
			return 0, err
		}
		// The store hiccupped: say so and keep trying.
		fmt.Fprintf(w, ": store unavailable, retrying\n\n")
		return 0, nil
	}
	for _, r := range recs {
		t.after = r.ID
		var a pipeline.AuditRecord
		if json.Unmarshal(r.Data, &a) != nil {
			continue
		}
		ev := Event{Type: eventType(a.Kind), Kind: a.Kind, Conv: a.Conv, At: a.At, Target: a.Target, Score: a.Score, Tier: a.Tier,
			Detail: a.Detail, Actor: a.Actor}
		if t.types != nil && !t.types[ev.Type] {
			continue
		}
		if !t.visible(ctx, a.Conv) {
			continue
		}
		b, _ := json.Marshal(ev)
		fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", r.ID, ev.Type, b)
	}
	return len(recs), nil
}

// visible applies the role's view: an agent sees events of conversations
// assigned to it now.
func (t *tail) visible(ctx context.Context, conv string) bool {
	if t.p.Role != RoleAgent {
		return true
	}
	if conv == "" || t.p.Agent == "" {
		return false
	}
	s, ok := t.seen[conv]
	if !ok || time.Since(s.at) > 5*time.Second {
		cv, _, err := t.api.app.Pipeline.Conversations().Get(ctx, conv)
		s = seenConv{at: time.Now()}
		if err == nil {
			s.assignee = cv.Assignee
		}
		if len(t.seen) > 10000 {
			clear(t.seen)
		}
		t.seen[conv] = s
	}
	return s.assignee == t.p.Agent
}

func (t *tail) stillValid(ctx context.Context) bool {
	if t.p.KeyID == BootstrapID {
		return true
	}
	k, _, err := GetKey(ctx, t.api.st, t.p.KeyID)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	return err != nil || k.Active(t.api.now())
}

// flush sends what is buffered. The server's write timeout is set once per
// response, which would cut a long stream: each flush moves the deadline.
func (t *tail) flush(w *bufio.Writer) bool {
	if t.conn != nil {
		_ = t.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	}
	return w.Flush() == nil
}
