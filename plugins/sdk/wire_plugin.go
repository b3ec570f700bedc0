package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/switchboard-hub/switchboard/plugins/sdk/pluginv1"
)

// Handshake is the go-plugin handshake shared by the hub and every plugin.
// The cookie is not a security measure: it tells a person who runs a plugin
// binary by hand that it is not meant to be run that way. It never changes.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "SWITCHBOARD_PLUGIN",
	MagicCookieValue: "7f3c2a9e-switchboard-plugin-v1",
}

// MaxMessageSize bounds one gRPC message in either direction. gRPC's 4 MB
// default is too small for a long LLM history or a webhook carrying a
// contact sync batch; media travels by URL, so 64 MB is generous.
const MaxMessageSize = 64 << 20

// GRPCPlugin is the go-plugin glue for one kind. On the plugin side Impl is
// the author's implementation; on the host side it is nil and GRPCClient
// returns a *Remote of the kind.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Kind Kind
	Impl Plugin
}

// GRPCServer registers the common and the kind service.
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	ps := &pluginServer{impl: p.Impl, kind: p.Kind, broker: broker}
	pb.RegisterPluginServer(s, ps)
	switch p.Kind {
	case KindChannel:
		impl, ok := p.Impl.(Channel)
		if !ok {
			return fmt.Errorf("plugin does not implement sdk.Channel")
		}
		pb.RegisterChannelServer(s, &channelServer{impl: impl})
	case KindCRM:
		impl, ok := p.Impl.(CRM)
		if !ok {
			return fmt.Errorf("plugin does not implement sdk.CRM")
		}
		pb.RegisterCRMServer(s, &crmServer{impl: impl})
	case KindLLM:
		impl, ok := p.Impl.(LLM)
		if !ok {
			return fmt.Errorf("plugin does not implement sdk.LLM")
		}
		pb.RegisterLLMServer(s, &llmServer{impl: impl})
	default:
		return fmt.Errorf("unknown plugin kind %q", p.Kind)
	}
	return nil
}

// GRPCClient returns *RemoteChannel, *RemoteCRM or *RemoteLLM.
func (p *GRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	r := &Remote{kind: p.Kind, broker: broker, common: pb.NewPluginClient(c)}
	switch p.Kind {
	case KindChannel:
		return &RemoteChannel{Remote: r, c: pb.NewChannelClient(c)}, nil
	case KindCRM:
		return &RemoteCRM{Remote: r, c: pb.NewCRMClient(c)}, nil
	case KindLLM:
		return &RemoteLLM{Remote: r, c: pb.NewLLMClient(c)}, nil
	}
	return nil, fmt.Errorf("unknown plugin kind %q", p.Kind)
}

// HostPluginSets is the host side of VersionedPlugins: every kind a host can
// dispense, by protocol version. A future v2 is added here beside v1.
func HostPluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {
			string(KindChannel): &GRPCPlugin{Kind: KindChannel},
			string(KindCRM):     &GRPCPlugin{Kind: KindCRM},
			string(KindLLM):     &GRPCPlugin{Kind: KindLLM},
		},
	}
}

// ---------------------------------------------------------------- plugin side

type pluginServer struct {
	pb.UnimplementedPluginServer
	impl   Plugin
	kind   Kind
	broker *plugin.GRPCBroker

	mu       sync.Mutex
	hostConn *grpc.ClientConn
	hostID   uint32
}

func (s *pluginServer) Describe(ctx context.Context, _ *pb.DescribeRequest) (*pb.Manifest, error) {
	m, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return manifestTo(completeManifest(m, s.kind)), nil
}

func completeManifest(m Manifest, kind Kind) Manifest {
	if m.Kind == "" {
		m.Kind = kind
	}
	m.ProtocolVersions = []int{ProtocolVersion}
	m.SDKVersion = Version
	return m
}

// Configure dials the host services once per broker id and reuses the
// connection: each broker Dial costs a listener and can take seconds.
func (s *pluginServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	var host Host = HostFromBackend(NewMemoryHost(slog.New(slog.NewJSONHandler(os.Stderr, nil))))
	if id := req.HostServicesBrokerId; id != 0 && s.broker != nil {
		s.mu.Lock()
		if s.hostConn == nil || s.hostID != id {
			if s.hostConn != nil {
				_ = s.hostConn.Close()
			}
			conn, err := s.broker.Dial(id)
			if err != nil {
				s.mu.Unlock()
				return nil, toStatus(Retryable(fmt.Errorf("dial host services: %w", err), 0))
			}
			s.hostConn, s.hostID = conn, id
		}
		host = newHostClient(pb.NewHostServicesClient(s.hostConn), req.Instance)
		s.mu.Unlock()
	}
	err := s.impl.Configure(ctx, ConfigureRequest{Instance: req.Instance, Config: json.RawMessage(req.Config), Host: host, HubVersion: req.HubVersion})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *pluginServer) Health(ctx context.Context, _ *pb.HealthRequest) (*pb.HealthResponse, error) {
	hc, ok := s.impl.(HealthChecker)
	if !ok {
		return &pb.HealthResponse{Ok: true}, nil
	}
	if err := hc.CheckHealth(ctx); err != nil {
		return &pb.HealthResponse{Ok: false, Message: err.Error()}, nil
	}
	return &pb.HealthResponse{Ok: true}, nil
}

type channelServer struct {
	pb.UnimplementedChannelServer
	impl Channel
}

func (s *channelServer) HandleWebhook(ctx context.Context, req *pb.WebhookRequest) (*pb.WebhookResult, error) {
	res, err := s.handleWebhook(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return res, nil
}

func (s *channelServer) handleWebhook(ctx context.Context, req *pb.WebhookRequest) (*pb.WebhookResult, error) {
	if req == nil {
		req = &pb.WebhookRequest{}
	}
	res, err := s.impl.HandleWebhook(ctx, webhookRequestFrom(req))
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, errors.New("plugin returned no webhook result")
	}
	return webhookResultTo(res), nil
}

// HandleWebhooks runs the author's HandleWebhook for every item of the
// batch concurrently, each under its own deadline, and answers the
// outcomes in order: authors get batching without writing any of it.
func (s *channelServer) HandleWebhooks(ctx context.Context, b *pb.WebhookBatch) (*pb.WebhookBatchResult, error) {
	out := make([]*pb.WebhookBatchOutcome, len(b.Items))
	one := func(i int) {
		it := b.Items[i]
		ictx := ctx
		if it.Timeout != nil {
			var cancel context.CancelFunc
			ictx, cancel = context.WithTimeout(ctx, it.Timeout.AsDuration())
			defer cancel()
		}
		res, err := s.handleWebhook(ictx, it.Request)
		if err != nil {
			out[i] = &pb.WebhookBatchOutcome{Outcome: &pb.WebhookBatchOutcome_Error{Error: callErrorTo(err)}}
			return
		}
		out[i] = &pb.WebhookBatchOutcome{Outcome: &pb.WebhookBatchOutcome_Result{Result: res}}
	}
	if len(b.Items) == 1 {
		one(0)
	} else {
		var wg sync.WaitGroup
		for i := range b.Items {
			wg.Go(func() { one(i) })
		}
		wg.Wait()
	}
	return &pb.WebhookBatchResult{Outcomes: out}, nil
}

func (s *channelServer) Send(ctx context.Context, req *pb.OutboundMessage) (*pb.SendResult, error) {
	res, err := s.impl.Send(ctx, outboundFrom(req))
	if err != nil {
		return nil, toStatus(err)
	}
	if res == nil {
		return nil, toStatus(errors.New("plugin returned no send result"))
	}
	return &pb.SendResult{ProviderMessageId: res.ProviderMessageID, AcceptedAt: tsTo(res.AcceptedAt)}, nil
}

type crmServer struct {
	pb.UnimplementedCRMServer
	impl CRM
}

func (s *crmServer) UpsertContact(ctx context.Context, req *pb.UpsertContactRequest) (*pb.UpsertContactResponse, error) {
	res, err := s.impl.UpsertContact(ctx, &UpsertContactRequest{IdempotencyKey: req.IdempotencyKey, Contact: *contactFrom(req.Contact)})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.UpsertContactResponse{Contact: contactTo(&res.Contact), Created: res.Created}, nil
}

func (s *crmServer) GetContact(ctx context.Context, req *pb.GetContactRequest) (*pb.Contact, error) {
	var id *Identity
	if req.Identity != nil {
		v := identityFrom(req.Identity)
		id = &v
	}
	c, err := s.impl.GetContact(ctx, req.Id, id)
	if err != nil {
		return nil, toStatus(err)
	}
	return contactTo(c), nil
}

func (s *crmServer) AddNote(ctx context.Context, req *pb.AddNoteRequest) (*pb.Note, error) {
	n, err := s.impl.AddNote(ctx, req.IdempotencyKey, noteFrom(req.Note))
	if err != nil {
		return nil, toStatus(err)
	}
	return noteTo(n), nil
}

func (s *crmServer) UpsertDeal(ctx context.Context, req *pb.UpsertDealRequest) (*pb.Deal, error) {
	d, err := s.impl.UpsertDeal(ctx, req.IdempotencyKey, dealFrom(req.Deal))
	if err != nil {
		return nil, toStatus(err)
	}
	return dealTo(d), nil
}

func (s *crmServer) CreateTask(ctx context.Context, req *pb.CreateTaskRequest) (*pb.Task, error) {
	t, err := s.impl.CreateTask(ctx, req.IdempotencyKey, taskFrom(req.Task))
	if err != nil {
		return nil, toStatus(err)
	}
	return taskTo(t), nil
}

type llmServer struct {
	pb.UnimplementedLLMServer
	impl LLM
}

func (s *llmServer) Generate(ctx context.Context, req *pb.GenerateRequest) (*pb.GenerateResponse, error) {
	res, err := s.impl.Generate(ctx, generateRequestFrom(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return generateResponseTo(res), nil
}

// ---------------------------------------------------------------- host side

// Remote is the host's handle on a running plugin of any kind.
type Remote struct {
	kind   Kind
	broker *plugin.GRPCBroker
	common pb.PluginClient

	mu      sync.Mutex
	hostID  uint32
	backend *swappableBackend
}

// Kind is the kind this handle was dispensed as.
func (r *Remote) Kind() Kind { return r.kind }

// Describe asks the plugin for its manifest.
func (r *Remote) Describe(ctx context.Context) (Manifest, error) {
	m, err := r.common.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return Manifest{}, fromStatus(err)
	}
	return manifestFrom(m), nil
}

// Configure sends the instance's config and serves backend to the plugin as
// its Host (KV and logging) over the broker. backend may be nil.
func (r *Remote) Configure(ctx context.Context, instance string, config json.RawMessage, backend HostBackend, hubVersion string) error {
	req := &pb.ConfigureRequest{Instance: instance, Config: config, HubVersion: hubVersion}
	if backend != nil && r.broker != nil {
		r.mu.Lock()
		if r.hostID == 0 {
			r.backend = &swappableBackend{}
			r.hostID = r.broker.NextId()
			srv := &hostServer{backend: r.backend}
			go r.broker.AcceptAndServe(r.hostID, func(opts []grpc.ServerOption) *grpc.Server {
				opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))
				s := grpc.NewServer(opts...)
				pb.RegisterHostServicesServer(s, srv)
				return s
			})
		}
		r.backend.set(backend)
		req.HostServicesBrokerId = r.hostID
		r.mu.Unlock()
	}
	_, err := r.common.Configure(ctx, req)
	return fromStatus(err)
}

// Health asks the plugin whether its provider is reachable.
func (r *Remote) Health(ctx context.Context) error {
	h, err := r.common.Health(ctx, &pb.HealthRequest{})
	if err != nil {
		return fromStatus(err)
	}
	if !h.Ok {
		return Retryable(errors.New(h.Message), 0).WithReason("unhealthy")
	}
	return nil
}

// RemoteChannel calls a channel plugin.
type RemoteChannel struct {
	*Remote
	c       pb.ChannelClient
	noBatch atomic.Bool
}

func (r *RemoteChannel) HandleWebhook(ctx context.Context, req *WebhookRequest) (*WebhookResult, error) {
	res, err := r.c.HandleWebhook(ctx, webhookRequestTo(req))
	if err != nil {
		return nil, fromStatus(err)
	}
	return webhookResultFrom(res), nil
}

// WebhookCall is one webhook of a batch.
type WebhookCall struct {
	Request *WebhookRequest
	// Deadline is when the caller stops waiting; the plugin handles the
	// webhook under it. Zero: the batch call's own deadline.
	Deadline time.Time
}

// WebhookOutcome is one webhook's answer in a batch: a result or a typed
// error, exactly as HandleWebhook would have answered it.
type WebhookOutcome struct {
	Result *WebhookResult
	Err    error
}

// ErrBatchUnsupported is what HandleWebhooks answers when the plugin was
// built with an SDK that predates batches; from then on
// BatchesWebhooks reports false and the caller should use HandleWebhook.
var ErrBatchUnsupported = errors.New("the plugin does not support batched calls")

// BatchesWebhooks reports whether HandleWebhooks may be used: true until
// the plugin answered that it does not implement it.
func (r *RemoteChannel) BatchesWebhooks() bool { return !r.noBatch.Load() }

// HandleWebhooks hands the plugin many webhooks in one call; the plugin
// handles them concurrently. The outcomes are in the order of calls. The
// error is that of the call as a whole (the plugin is unavailable, ctx
// ended, ErrBatchUnsupported), typed as for HandleWebhook; then no item
// has an outcome. ctx bounds the whole call: give it the latest deadline
// of the items.
func (r *RemoteChannel) HandleWebhooks(ctx context.Context, calls []WebhookCall) ([]WebhookOutcome, error) {
	out := make([]WebhookOutcome, len(calls))
	b := &pb.WebhookBatch{Items: make([]*pb.WebhookBatchItem, 0, len(calls))}
	idx := make([]int, 0, len(calls))
	now := time.Now()
	for i, c := range calls {
		it := &pb.WebhookBatchItem{Request: webhookRequestTo(c.Request)}
		if !c.Deadline.IsZero() {
			left := c.Deadline.Sub(now)
			if left <= 0 {
				out[i].Err = DeadlineError("the deadline passed before the webhook was sent")
				continue
			}
			it.Timeout = durationpb.New(left)
		}
		b.Items = append(b.Items, it)
		idx = append(idx, i)
	}
	if len(b.Items) == 0 {
		return out, nil
	}
	res, err := r.c.HandleWebhooks(ctx, b)
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			r.noBatch.Store(true)
			return nil, ErrBatchUnsupported
		}
		return nil, fromStatus(err)
	}
	if len(res.Outcomes) != len(b.Items) {
		return nil, &Error{Code: CodeUnknown, Message: fmt.Sprintf("the plugin answered %d outcomes for a batch of %d webhooks", len(res.Outcomes), len(b.Items))}
	}
	for j, o := range res.Outcomes {
		i := idx[j]
		switch v := o.Outcome.(type) {
		case *pb.WebhookBatchOutcome_Result:
			if v.Result == nil {
				v.Result = &pb.WebhookResult{}
			}
			out[i].Result = webhookResultFrom(v.Result)
		case *pb.WebhookBatchOutcome_Error:
			out[i].Err = callErrorFrom(v.Error)
		default:
			out[i].Err = &Error{Code: CodeUnknown, Message: "the plugin answered an empty outcome"}
		}
	}
	return out, nil
}

func (r *RemoteChannel) Send(ctx context.Context, msg *Outbound) (*SendResult, error) {
	res, err := r.c.Send(ctx, outboundTo(msg))
	if err != nil {
		return nil, fromStatus(err)
	}
	return &SendResult{ProviderMessageID: res.ProviderMessageId, AcceptedAt: tsFrom(res.AcceptedAt)}, nil
}

// RemoteCRM calls a CRM plugin.
type RemoteCRM struct {
	*Remote
	c pb.CRMClient
}

func (r *RemoteCRM) UpsertContact(ctx context.Context, req *UpsertContactRequest) (*UpsertContactResult, error) {
	res, err := r.c.UpsertContact(ctx, &pb.UpsertContactRequest{IdempotencyKey: req.IdempotencyKey, Contact: contactTo(&req.Contact)})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &UpsertContactResult{Contact: *contactFrom(res.Contact), Created: res.Created}, nil
}

func (r *RemoteCRM) GetContact(ctx context.Context, id string, identity *Identity) (*Contact, error) {
	req := &pb.GetContactRequest{Id: id}
	if identity != nil {
		req.Identity = identityTo(*identity)
	}
	c, err := r.c.GetContact(ctx, req)
	if err != nil {
		return nil, fromStatus(err)
	}
	return contactFrom(c), nil
}

func (r *RemoteCRM) AddNote(ctx context.Context, key string, note *Note) (*Note, error) {
	n, err := r.c.AddNote(ctx, &pb.AddNoteRequest{IdempotencyKey: key, Note: noteTo(note)})
	if err != nil {
		return nil, fromStatus(err)
	}
	return noteFrom(n), nil
}

func (r *RemoteCRM) UpsertDeal(ctx context.Context, key string, deal *Deal) (*Deal, error) {
	d, err := r.c.UpsertDeal(ctx, &pb.UpsertDealRequest{IdempotencyKey: key, Deal: dealTo(deal)})
	if err != nil {
		return nil, fromStatus(err)
	}
	return dealFrom(d), nil
}

func (r *RemoteCRM) CreateTask(ctx context.Context, key string, task *Task) (*Task, error) {
	t, err := r.c.CreateTask(ctx, &pb.CreateTaskRequest{IdempotencyKey: key, Task: taskTo(task)})
	if err != nil {
		return nil, fromStatus(err)
	}
	return taskFrom(t), nil
}

// RemoteLLM calls an LLM plugin.
type RemoteLLM struct {
	*Remote
	c pb.LLMClient
}

func (r *RemoteLLM) Generate(ctx context.Context, req *GenerateRequest) (*GenerateResponse, error) {
	res, err := r.c.Generate(ctx, generateRequestTo(req))
	if err != nil {
		return nil, fromStatus(err)
	}
	return generateResponseFrom(res), nil
}
