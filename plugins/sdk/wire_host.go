package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchboard-hub/switchboard/plugins/sdk/coalesce"
	pb "github.com/switchboard-hub/switchboard/plugins/sdk/pluginv1"
)

// HostFromBackend adapts a HostBackend to the Host a plugin sees. Tests use
// it to hand a MemoryHost to an implementation directly.
func HostFromBackend(b HostBackend) Host { return backendHost{b} }

type backendHost struct{ b HostBackend }

func (h backendHost) KV() KV { return h.b }
func (h backendHost) Logger() *slog.Logger {
	return slog.New(&backendHandler{b: h.b, min: hubLogLevel()})
}

// backendHandler is a slog.Handler that ships records to the host, so plugin
// logs land in the hub's structured log with their level and attributes.
type backendHandler struct {
	b      HostBackend
	min    slog.Level
	attrs  []slog.Attr
	prefix string
}

func (h *backendHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.min }

func (h *backendHandler) Handle(ctx context.Context, r slog.Record) error {
	m := make(map[string]string, len(h.attrs)+r.NumAttrs())
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		m[h.prefix+a.Key] = a.Value.String()
		return true
	})
	// A log line must not fail because the call that logs was cancelled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	h.b.Log(ctx, r.Level, r.Message, m)
	return nil
}

func (h *backendHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), prefixed(h.prefix, as)...)
	return &n
}

func (h *backendHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}

func prefixed(p string, as []slog.Attr) []slog.Attr {
	if p == "" {
		return as
	}
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = slog.Attr{Key: p + a.Key, Value: a.Value}
	}
	return out
}

// hostClient is the plugin side of HostServices. Concurrent KV calls go to
// the hub in batches (KVBatch): a call leaves at once when one of a few
// batch slots is free, calls arriving meanwhile leave together, so at light
// load a call costs one round trip as before and under load the round trips
// are shared. A hub that predates KVBatch gets single calls.
type hostClient struct {
	c        pb.HostServicesClient
	instance string
	kv       *coalesce.Batcher[kvCall, *pb.KVOpResult]
	noBatch  atomic.Bool
}

type kvCall struct {
	ctx context.Context
	op  *pb.KVOp
}

const (
	kvBatchItems    = 64
	kvBatchInFlight = 4
	kvBatchBytes    = 8 << 20
	// kvNoDeadline bounds a batch holding a call without a deadline; a KV
	// call is a store round trip.
	kvNoDeadline = 30 * time.Second
	kvBatchSlack = time.Second
)

func newHostClient(c pb.HostServicesClient, instance string) Host {
	return HostFromBackend(newKVClient(c, instance))
}

func newKVClient(c pb.HostServicesClient, instance string) *hostClient {
	h := &hostClient{c: c, instance: instance}
	h.kv = coalesce.New(h.sendKV, coalesce.Options[kvCall]{MaxItems: kvBatchItems, MaxInFlight: kvBatchInFlight,
		MaxBytes: kvBatchBytes, Size: kvOpSize})
	return h
}

func kvOpSize(c kvCall) int {
	switch o := c.op.Op.(type) {
	case *pb.KVOp_Get:
		return len(o.Get.GetKey()) + 32
	case *pb.KVOp_Put:
		return len(o.Put.GetKey()) + len(o.Put.GetValue()) + 32
	case *pb.KVOp_CompareAndSwap:
		return len(o.CompareAndSwap.GetKey()) + len(o.CompareAndSwap.GetValue()) + 32
	case *pb.KVOp_Delete:
		return len(o.Delete.GetKey()) + 32
	}
	return 32
}

// do runs one KV op, batched while the hub supports it, and returns the
// single call's answer or its typed error, as fromStatus would give it.
func (h *hostClient) do(ctx context.Context, op *pb.KVOp) (*pb.KVOpResult, error) {
	var res *pb.KVOpResult
	if h.noBatch.Load() {
		res = h.single(ctx, op)
	} else {
		var err error
		res, err = h.kv.Do(ctx, kvCall{ctx: ctx, op: op})
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && !isTyped(err) {
				// As a single call whose deadline passed on the wire.
				return nil, DeadlineError("context deadline exceeded")
			}
			return nil, err
		}
	}
	if e := res.GetError(); e != nil {
		return nil, callErrorFrom(e)
	}
	return res, nil
}

// single runs op as its own unary call.
func (h *hostClient) single(ctx context.Context, op *pb.KVOp) *pb.KVOpResult {
	var (
		res *pb.KVOpResult
		err error
	)
	switch o := op.Op.(type) {
	case *pb.KVOp_Get:
		var r *pb.KVGetResponse
		if r, err = h.c.KVGet(ctx, o.Get); err == nil {
			res = &pb.KVOpResult{Result: &pb.KVOpResult_Get{Get: r}}
		}
	case *pb.KVOp_Put:
		var r *pb.KVPutResponse
		if r, err = h.c.KVPut(ctx, o.Put); err == nil {
			res = &pb.KVOpResult{Result: &pb.KVOpResult_Put{Put: r}}
		}
	case *pb.KVOp_CompareAndSwap:
		var r *pb.KVPutResponse
		if r, err = h.c.KVCompareAndSwap(ctx, o.CompareAndSwap); err == nil {
			res = &pb.KVOpResult{Result: &pb.KVOpResult_Put{Put: r}}
		}
	case *pb.KVOp_Delete:
		var r *pb.KVDeleteResponse
		if r, err = h.c.KVDelete(ctx, o.Delete); err == nil {
			res = &pb.KVOpResult{Result: &pb.KVOpResult_Delete{Delete: r}}
		}
	default:
		err = status.Error(codes.InvalidArgument, "empty KV op")
	}
	if err != nil {
		return &pb.KVOpResult{Result: &pb.KVOpResult_Error{Error: callErrorTo(err)}}
	}
	return res
}

// sendKV sends one batch of KV ops.
func (h *hostClient) sendKV(calls []kvCall) []coalesce.Result[*pb.KVOpResult] {
	out := make([]coalesce.Result[*pb.KVOpResult], len(calls))
	if h.noBatch.Load() {
		h.singles(calls, out)
		return out
	}
	req := &pb.KVBatchRequest{Ops: make([]*pb.KVOp, 0, len(calls))}
	idx := make([]int, 0, len(calls))
	now := time.Now()
	var latest time.Time
	for i, c := range calls {
		d, ok := c.ctx.Deadline()
		if !ok {
			c.op.Timeout = nil
			d = now.Add(kvNoDeadline)
		} else {
			left := d.Sub(now)
			if left <= 0 {
				out[i].Err = DeadlineError("the deadline passed before the KV call was sent")
				continue
			}
			c.op.Timeout = durationpb.New(left)
		}
		if d.After(latest) {
			latest = d
		}
		req.Ops = append(req.Ops, c.op)
		idx = append(idx, i)
	}
	if len(req.Ops) == 0 {
		return out
	}
	ctx, cancel := context.WithDeadline(context.Background(), latest.Add(kvBatchSlack))
	res, err := h.c.KVBatch(ctx, req)
	cancel()
	switch {
	case status.Code(err) == codes.Unimplemented:
		// A hub that predates KVBatch: single calls from now on.
		h.noBatch.Store(true)
		h.singles(calls, out)
	case err != nil:
		err = fromStatus(err)
		for _, i := range idx {
			out[i].Err = err
		}
	case len(res.Results) != len(req.Ops):
		err = &Error{Code: CodeUnknown, Message: fmt.Sprintf("the hub answered %d results for a batch of %d KV calls", len(res.Results), len(req.Ops))}
		for _, i := range idx {
			out[i].Err = err
		}
	default:
		for j, r := range res.Results {
			out[idx[j]].Val = r
		}
	}
	return out
}

// singles runs every call on its own, concurrently.
func (h *hostClient) singles(calls []kvCall, out []coalesce.Result[*pb.KVOpResult]) {
	var wg sync.WaitGroup
	for i, c := range calls {
		if out[i].Err != nil {
			continue
		}
		c.op.Timeout = nil
		wg.Go(func() { out[i].Val = h.single(c.ctx, c.op) })
	}
	wg.Wait()
}

func errBadAnswer(what string) error {
	return &Error{Code: CodeUnknown, Message: "the hub answered a KV " + what + " with another kind of result"}
}

func (h *hostClient) Get(ctx context.Context, key string) ([]byte, int64, error) {
	r, err := h.do(ctx, &pb.KVOp{Op: &pb.KVOp_Get{Get: &pb.KVGetRequest{Key: key}}})
	if err != nil {
		return nil, 0, err
	}
	res := r.GetGet()
	if res == nil {
		return nil, 0, errBadAnswer("get")
	}
	if !res.Found {
		return nil, 0, ErrNotFound
	}
	return res.Value, res.Version, nil
}

func (h *hostClient) Put(ctx context.Context, key string, value []byte, ttl time.Duration) (int64, error) {
	r, err := h.do(ctx, &pb.KVOp{Op: &pb.KVOp_Put{Put: &pb.KVPutRequest{Key: key, Value: value, TtlMs: ttl.Milliseconds()}}})
	if err != nil {
		return 0, err
	}
	res := r.GetPut()
	if res == nil {
		return 0, errBadAnswer("put")
	}
	return res.Version, nil
}

func (h *hostClient) CompareAndSwap(ctx context.Context, key string, expect int64, value []byte, ttl time.Duration) (int64, error) {
	r, err := h.do(ctx, &pb.KVOp{Op: &pb.KVOp_CompareAndSwap{CompareAndSwap: &pb.KVCompareAndSwapRequest{Key: key, ExpectVersion: expect, Value: value, TtlMs: ttl.Milliseconds()}}})
	if err != nil {
		return 0, err
	}
	res := r.GetPut()
	if res == nil {
		return 0, errBadAnswer("compare-and-swap")
	}
	return res.Version, nil
}

func (h *hostClient) Delete(ctx context.Context, key string) error {
	r, err := h.do(ctx, &pb.KVOp{Op: &pb.KVOp_Delete{Delete: &pb.KVDeleteRequest{Key: key}}})
	if err != nil {
		return err
	}
	if r.GetDelete() == nil {
		return errBadAnswer("delete")
	}
	return nil
}

func (h *hostClient) Log(ctx context.Context, level slog.Level, msg string, attrs map[string]string) {
	_, _ = h.c.Log(ctx, &pb.LogRequest{Level: strings.ToLower(level.String()), Message: msg, Attrs: attrs})
}

// hostServer is the hub side of HostServices. The backend behind it can be
// swapped when the plugin is reconfigured without re-serving the broker id.
type hostServer struct {
	pb.UnimplementedHostServicesServer
	backend *swappableBackend
}

type swappableBackend struct {
	mu sync.RWMutex
	b  HostBackend
}

func (s *swappableBackend) set(b HostBackend) { s.mu.Lock(); s.b = b; s.mu.Unlock() }
func (s *swappableBackend) get() HostBackend  { s.mu.RLock(); defer s.mu.RUnlock(); return s.b }

func (s *hostServer) KVGet(ctx context.Context, req *pb.KVGetRequest) (*pb.KVGetResponse, error) {
	v, ver, err := s.backend.get().Get(ctx, req.Key)
	if err != nil {
		if CodeOf(err) == CodeNotFound {
			return &pb.KVGetResponse{Found: false}, nil
		}
		return nil, toStatus(err)
	}
	return &pb.KVGetResponse{Found: true, Value: v, Version: ver}, nil
}

func (s *hostServer) KVPut(ctx context.Context, req *pb.KVPutRequest) (*pb.KVPutResponse, error) {
	ver, err := s.backend.get().Put(ctx, req.Key, req.Value, time.Duration(req.TtlMs)*time.Millisecond)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.KVPutResponse{Version: ver}, nil
}

func (s *hostServer) KVCompareAndSwap(ctx context.Context, req *pb.KVCompareAndSwapRequest) (*pb.KVPutResponse, error) {
	ver, err := s.backend.get().CompareAndSwap(ctx, req.Key, req.ExpectVersion, req.Value, time.Duration(req.TtlMs)*time.Millisecond)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.KVPutResponse{Version: ver}, nil
}

func (s *hostServer) KVDelete(ctx context.Context, req *pb.KVDeleteRequest) (*pb.KVDeleteResponse, error) {
	if err := s.backend.get().Delete(ctx, req.Key); err != nil {
		return nil, toStatus(err)
	}
	return &pb.KVDeleteResponse{}, nil
}

// KVBatch runs the ops of a batch concurrently, each under its own
// deadline and through the very handler of its single call, so each op
// answers exactly what that call would have: the same versions, the same
// not-found and conflict, the same instance namespace.
func (s *hostServer) KVBatch(ctx context.Context, req *pb.KVBatchRequest) (*pb.KVBatchResponse, error) {
	out := make([]*pb.KVOpResult, len(req.Ops))
	one := func(i int) {
		op := req.Ops[i]
		ictx := ctx
		if op.Timeout != nil {
			var cancel context.CancelFunc
			ictx, cancel = context.WithTimeout(ctx, op.Timeout.AsDuration())
			defer cancel()
		}
		out[i] = s.kvOp(ictx, op)
	}
	if len(req.Ops) == 1 {
		one(0)
	} else {
		var wg sync.WaitGroup
		for i := range req.Ops {
			wg.Go(func() { one(i) })
		}
		wg.Wait()
	}
	return &pb.KVBatchResponse{Results: out}, nil
}

func (s *hostServer) kvOp(ctx context.Context, op *pb.KVOp) *pb.KVOpResult {
	var (
		res *pb.KVOpResult
		err error
	)
	switch o := op.Op.(type) {
	case *pb.KVOp_Get:
		var r *pb.KVGetResponse
		if r, err = s.KVGet(ctx, orEmpty(o.Get)); err == nil {
			res = &pb.KVOpResult{Result: &pb.KVOpResult_Get{Get: r}}
		}
	case *pb.KVOp_Put:
		var r *pb.KVPutResponse
		if r, err = s.KVPut(ctx, orEmpty(o.Put)); err == nil {
			res = &pb.KVOpResult{Result: &pb.KVOpResult_Put{Put: r}}
		}
	case *pb.KVOp_CompareAndSwap:
		var r *pb.KVPutResponse
		if r, err = s.KVCompareAndSwap(ctx, orEmpty(o.CompareAndSwap)); err == nil {
			res = &pb.KVOpResult{Result: &pb.KVOpResult_Put{Put: r}}
		}
	case *pb.KVOp_Delete:
		var r *pb.KVDeleteResponse
		if r, err = s.KVDelete(ctx, orEmpty(o.Delete)); err == nil {
			res = &pb.KVOpResult{Result: &pb.KVOpResult_Delete{Delete: r}}
		}
	default:
		err = status.Error(codes.InvalidArgument, "empty KV op")
	}
	if err != nil {
		return &pb.KVOpResult{Result: &pb.KVOpResult_Error{Error: callErrorTo(err)}}
	}
	return res
}

func orEmpty[T any](p *T) *T {
	if p == nil {
		return new(T)
	}
	return p
}

func (s *hostServer) Log(ctx context.Context, req *pb.LogRequest) (*pb.LogResponse, error) {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(req.Level))
	s.backend.get().Log(ctx, lvl, req.Message, req.Attrs)
	return &pb.LogResponse{}, nil
}
