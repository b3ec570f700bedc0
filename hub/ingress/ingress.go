// Package ingress receives provider webhooks: it hands the raw request to
// the channel plugin, durably queues the events it returns, and only then
// answers with the plugin's response. A request whose events cannot be
// stored gets a 503, so the provider retries: never a 2xx for something
// not stored.
package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Channel is what ingress needs of a channel plugin.
type Channel interface {
	HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResult, error)
}

// Options configure the webhook handler.
type Options struct {
	Channels     func(instance string) (Channel, bool)
	Pipeline     *pipeline.Pipeline
	Store        store.Store
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	RawRetention time.Duration
	// PluginTimeout bounds the plugin's verify-and-parse; providers want an
	// answer within seconds (Zalo: 2 s) and retry otherwise.
	PluginTimeout time.Duration
	// StoreTimeout bounds storing the events of one request (30 s). It is
	// separate from PluginTimeout: a provider's batch of thousands of
	// messages takes longer to store than a plugin takes to parse it, and
	// cutting it short would answer 503 to the same batch for ever.
	StoreTimeout time.Duration
	Now          func() time.Time
}

// RawLog is the log name of the raw inbound requests.
const RawLog = "raw"

// RawRequest is a stored inbound request, for replay.
type RawRequest struct {
	Instance   string      `json:"instance"`
	RequestID  string      `json:"request_id"`
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	RawQuery   string      `json:"raw_query,omitempty"`
	Header     http.Header `json:"header"`
	Body       []byte      `json:"body"`
	ReceivedAt time.Time   `json:"received_at"`
	Status     int         `json:"status"` // the plugin's answer (the provider got a 503 if the events could not be stored)
	Events     int         `json:"events"`
}

// Handler serves /webhooks/{instance}.
type Handler struct {
	o        Options
	requests *prometheus.CounterVec
	ack      *prometheus.HistogramVec
}

// New returns a Handler; Register mounts it.
func New(o Options) *Handler {
	if o.PluginTimeout == 0 {
		o.PluginTimeout = 1500 * time.Millisecond
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RawRetention == 0 {
		o.RawRetention = 7 * 24 * time.Hour
	}
	h := &Handler{o: o,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_webhook_requests_total",
			Help: "Webhook requests by plugin instance and HTTP status."}, []string{"instance", "status"}),
		ack: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchboard_webhook_ack_seconds",
			Help:    "Time from receipt to the answer, events stored.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2}}, []string{"instance"}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(h.requests, h.ack)
	}
	return h
}

// Register mounts the webhook routes on app.
func (h *Handler) Register(app *fiber.App) {
	app.All("/webhooks/:instance", h.webhook)
}

// headersKept are left out of the raw log: they authenticate callers to
// us, not the provider's payload.
var headersDropped = map[string]bool{"Authorization": true, "Cookie": true, "Proxy-Authorization": true}

func (h *Handler) webhook(c *fiber.Ctx) error {
	start := h.o.Now()
	instance := strings.Clone(c.Params("instance"))
	rid, _ := c.Locals("requestid").(string)
	log := h.o.Logger.With("request_id", rid, "instance", instance)
	ch, ok := h.o.Channels(instance)
	if !ok {
		h.requests.WithLabelValues("unknown", "404").Inc()
		return Problem(c, http.StatusNotFound, "unknown-instance", "No channel plugin instance named "+strconv.Quote(instance)+".")
	}
	// fasthttp reuses its buffers after the handler returns: copy what the
	// plugin and the queue keep.
	header := make(http.Header)
	c.Request().Header.VisitAll(func(k, v []byte) {
		header.Add(string(k), string(v))
	})
	req := &sdk.WebhookRequest{
		Method: strings.Clone(c.Method()), Path: string(c.Request().URI().Path()), RawQuery: string(c.Request().URI().QueryString()),
		Header: header, Body: bytes.Clone(c.Body()), RemoteAddr: c.IP(), RequestID: rid, ReceivedAt: start,
	}
	pctx, cancel := context.WithTimeout(c.UserContext(), h.o.PluginTimeout)
	res, err := ch.HandleWebhook(pctx, req)
	cancel()
	if err != nil {
		log.Warn("channel plugin could not handle the webhook; asking the provider to retry", "err", err)
		return h.unavailable(c, instance, start)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), h.o.StoreTimeout)
	defer cancel()
	status := res.Response.Status
	if status == 0 {
		status = http.StatusOK
	}
	// The raw copy is written alongside the events, not after them, so
	// both share the store's round trip (or commit) before the answer.
	var raw sync.WaitGroup
	if req.Method != http.MethodGet {
		raw.Add(1)
		go func() { defer raw.Done(); h.logRaw(ctx, log, instance, req, status, len(res.Events)) }()
	}
	stored, err := h.storeEvents(ctx, instance, rid, start, res.Events)
	raw.Wait()
	if err != nil {
		log.Warn("store unavailable; asking the provider to retry", "err", err, "stored", stored, "events", len(res.Events))
		return h.unavailable(c, instance, start)
	}
	if status >= 400 {
		// No customer data: the plugin said why in its response; the body
		// stays in the raw log for an admin.
		log.Info("webhook refused by the channel plugin", "status", status, "bytes", len(req.Body))
	}
	for k, vs := range res.Response.Header {
		for _, v := range vs {
			c.Response().Header.Add(k, v)
		}
	}
	h.requests.WithLabelValues(instance, strconv.Itoa(status)).Inc()
	h.ack.WithLabelValues(instance).Observe(h.o.Now().Sub(start).Seconds())
	return c.Status(status).Send(res.Response.Body)
}

// storeEvents queues the events of one request. Events of one
// conversation are queued in order, one after the other; different
// conversations (a provider's batch) are queued concurrently, so they share
// the store's commits instead of waiting for each other's.
func (h *Handler) storeEvents(ctx context.Context, instance, rid string, start time.Time, events []sdk.Event) (int, error) {
	if len(events) <= 1 {
		for i := range events {
			if err := h.storeEvent(ctx, instance, rid, start, &events[i]); err != nil {
				return i, err
			}
		}
		return len(events), nil
	}
	var order []string
	byConv := map[string][]*sdk.Event{}
	for i := range events {
		k := events[i].ConversationKey
		if _, ok := byConv[k]; !ok {
			order = append(order, k)
		}
		byConv[k] = append(byConv[k], &events[i])
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		stored int
		first  error
	)
	sem := make(chan struct{}, storeParallelism)
	for _, k := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func(evs []*sdk.Event) {
			defer func() { <-sem; wg.Done() }()
			for _, ev := range evs {
				err := h.storeEvent(ctx, instance, rid, start, ev)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if err == nil {
					stored++
				}
				stop := first != nil
				mu.Unlock()
				if stop {
					return
				}
			}
		}(byConv[k])
	}
	wg.Wait()
	return stored, first
}

// storeParallelism bounds the conversations of one request queued at once.
const storeParallelism = 64

func (h *Handler) storeEvent(ctx context.Context, instance, rid string, start time.Time, ev *sdk.Event) error {
	if y := ev.Timestamp.Year(); y < 1 || y > 9999 {
		// A time JSON cannot carry would make the task unstorable, and
		// the request a 503 on every retry: take the time it arrived.
		ev.Timestamp = start
	}
	conv := pipeline.ConvID(instance, ev.ConversationKey)
	task := &pipeline.Task{Kind: pipeline.TaskEvent, Instance: instance, Conv: conv, RequestID: rid, ReceivedAt: start, Event: ev}
	if ev.Kind == sdk.EventMessage {
		var seen int64
		var err error
		if ev.Author == sdk.AuthorAgent {
			// Tell a reply being composed right now that a person spoke.
			seen, err = h.o.Store.Incr(ctx, pipeline.AgentCounterKey(conv), 1, 30*24*time.Hour)
		} else {
			// What the bot's reply to this message will be checked against.
			seen, err = h.o.Store.GetCounter(ctx, pipeline.AgentCounterKey(conv))
		}
		if err != nil {
			return err
		}
		task.AgentSeen = &seen
	}
	_, err := h.o.Pipeline.Enqueue(ctx, task)
	return err
}

func (h *Handler) logRaw(ctx context.Context, log *slog.Logger, instance string, req *sdk.WebhookRequest, status, events int) {
	hdr := make(http.Header, len(req.Header))
	for k, v := range req.Header {
		if !headersDropped[http.CanonicalHeaderKey(k)] {
			hdr[k] = v
		}
	}
	b, _ := json.Marshal(RawRequest{Instance: instance, RequestID: req.RequestID, Method: req.Method, Path: req.Path, RawQuery: req.RawQuery,
		Header: hdr, Body: req.Body, ReceivedAt: req.ReceivedAt, Status: status, Events: events})
	if _, err := h.o.Store.Append(ctx, RawLog, b, h.o.RawRetention); err != nil {
		// The events are stored; losing the replay copy is not worth a retry storm.
		log.Warn("raw inbound log append failed", "err", err)
	}
}

func (h *Handler) unavailable(c *fiber.Ctx, instance string, start time.Time) error {
	h.requests.WithLabelValues(instance, "503").Inc()
	h.ack.WithLabelValues(instance).Observe(h.o.Now().Sub(start).Seconds())
	c.Set("Retry-After", "5")
	return Problem(c, http.StatusServiceUnavailable, "unavailable", "The hub cannot store this delivery right now; retry later.")
}

// Replay runs a stored raw request through its channel plugin again and
// queues its events as replays (bypassing the dedupe of event ids), after
// a rule or connector fix.
func (h *Handler) Replay(ctx context.Context, raw RawRequest) (int, error) {
	ch, ok := h.o.Channels(raw.Instance)
	if !ok {
		return 0, errors.New("no channel plugin instance " + strconv.Quote(raw.Instance))
	}
	res, err := ch.HandleWebhook(ctx, &sdk.WebhookRequest{Method: raw.Method, Path: raw.Path, RawQuery: raw.RawQuery,
		Header: raw.Header, Body: raw.Body, RequestID: raw.RequestID, ReceivedAt: raw.ReceivedAt})
	if err != nil {
		return 0, err
	}
	for i := range res.Events {
		ev := &res.Events[i]
		if _, err := h.o.Pipeline.Enqueue(ctx, &pipeline.Task{Kind: pipeline.TaskEvent, Instance: raw.Instance,
			Conv: pipeline.ConvID(raw.Instance, ev.ConversationKey), RequestID: raw.RequestID, ReceivedAt: h.o.Now(), Event: ev, Replay: true}); err != nil {
			return i, err
		}
	}
	return len(res.Events), nil
}

// Problem writes an RFC 9457 problem+json response with a stable type.
func Problem(c *fiber.Ctx, status int, typ, detail string) error {
	rid, _ := c.Locals("requestid").(string)
	b, _ := json.Marshal(fiber.Map{
		"type":       "https://switchboard.dev/problems/" + typ,
		"title":      http.StatusText(status),
		"status":     status,
		"detail":     detail,
		"request_id": rid,
	})
	c.Set(fiber.HeaderContentType, "application/problem+json")
	return c.Status(status).Send(b)
}
