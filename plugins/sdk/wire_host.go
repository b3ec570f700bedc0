package sdk

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	pb "github.com/switchboard-hub/switchboard/plugins/sdk/pluginv1"
)

// HostFromBackend adapts a HostBackend to the Host a plugin sees. Tests use
// it to hand a MemoryHost to an implementation directly.
func HostFromBackend(b HostBackend) Host { return backendHost{b} }

type backendHost struct{ b HostBackend }

func (h backendHost) KV() KV               { return h.b }
func (h backendHost) Logger() *slog.Logger { return slog.New(&backendHandler{b: h.b}) }

// backendHandler is a slog.Handler that ships records to the host, so plugin
// logs land in the hub's structured log with their level and attributes.
type backendHandler struct {
	b      HostBackend
	attrs  []slog.Attr
	prefix string
}

func (h *backendHandler) Enabled(context.Context, slog.Level) bool { return true }

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

// hostClient is the plugin side of HostServices.
type hostClient struct {
	c        pb.HostServicesClient
	instance string
}

func newHostClient(c pb.HostServicesClient, instance string) Host {
	return HostFromBackend(&hostClient{c: c, instance: instance})
}

func (h *hostClient) Get(ctx context.Context, key string) ([]byte, int64, error) {
	res, err := h.c.KVGet(ctx, &pb.KVGetRequest{Key: key})
	if err != nil {
		return nil, 0, fromStatus(err)
	}
	if !res.Found {
		return nil, 0, ErrNotFound
	}
	return res.Value, res.Version, nil
}

func (h *hostClient) Put(ctx context.Context, key string, value []byte, ttl time.Duration) (int64, error) {
	res, err := h.c.KVPut(ctx, &pb.KVPutRequest{Key: key, Value: value, TtlMs: ttl.Milliseconds()})
	if err != nil {
		return 0, fromStatus(err)
	}
	return res.Version, nil
}

func (h *hostClient) CompareAndSwap(ctx context.Context, key string, expect int64, value []byte, ttl time.Duration) (int64, error) {
	res, err := h.c.KVCompareAndSwap(ctx, &pb.KVCompareAndSwapRequest{Key: key, ExpectVersion: expect, Value: value, TtlMs: ttl.Milliseconds()})
	if err != nil {
		return 0, fromStatus(err)
	}
	return res.Version, nil
}

func (h *hostClient) Delete(ctx context.Context, key string) error {
	_, err := h.c.KVDelete(ctx, &pb.KVDeleteRequest{Key: key})
	return fromStatus(err)
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

func (s *hostServer) Log(ctx context.Context, req *pb.LogRequest) (*pb.LogResponse, error) {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(req.Level))
	s.backend.get().Log(ctx, lvl, req.Message, req.Attrs)
	return &pb.LogResponse{}, nil
}
