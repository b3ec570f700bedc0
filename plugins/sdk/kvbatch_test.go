package sdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/switchboard-hub/switchboard/plugins/sdk/pluginv1"
)

// loopback is a HostServicesClient wired straight to a hub-side
// hostServer, counting the calls that would cross the wire.
type loopback struct {
	srv     *hostServer
	batches atomic.Int64 // KVBatch calls answered
	refused atomic.Int64 // KVBatch calls refused as Unimplemented
	singles atomic.Int64
	items   atomic.Int64

	oldHub  bool          // answers KVBatch with Unimplemented, as a hub before it
	down    bool          // every call fails as with the hub gone
	gate    chan struct{} // when set, KVBatch waits for it to close
	arrived atomic.Int64
}

func newLoopback(b HostBackend) *loopback {
	sb := &swappableBackend{}
	sb.set(b)
	return &loopback{srv: &hostServer{backend: sb}}
}

var errHubGone = status.Error(codes.Unavailable, "connection refused")

// fail is what gRPC answers before the call reaches the hub.
func (l *loopback) fail(ctx context.Context) error {
	if l.down {
		return errHubGone
	}
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return nil
}

func (l *loopback) KVGet(ctx context.Context, in *pb.KVGetRequest, _ ...grpc.CallOption) (*pb.KVGetResponse, error) {
	l.singles.Add(1)
	if err := l.fail(ctx); err != nil {
		return nil, err
	}
	return l.srv.KVGet(ctx, in)
}

func (l *loopback) KVPut(ctx context.Context, in *pb.KVPutRequest, _ ...grpc.CallOption) (*pb.KVPutResponse, error) {
	l.singles.Add(1)
	if err := l.fail(ctx); err != nil {
		return nil, err
	}
	return l.srv.KVPut(ctx, in)
}

func (l *loopback) KVCompareAndSwap(ctx context.Context, in *pb.KVCompareAndSwapRequest, _ ...grpc.CallOption) (*pb.KVPutResponse, error) {
	l.singles.Add(1)
	if err := l.fail(ctx); err != nil {
		return nil, err
	}
	return l.srv.KVCompareAndSwap(ctx, in)
}

func (l *loopback) KVDelete(ctx context.Context, in *pb.KVDeleteRequest, _ ...grpc.CallOption) (*pb.KVDeleteResponse, error) {
	l.singles.Add(1)
	if err := l.fail(ctx); err != nil {
		return nil, err
	}
	return l.srv.KVDelete(ctx, in)
}

func (l *loopback) Log(ctx context.Context, in *pb.LogRequest, _ ...grpc.CallOption) (*pb.LogResponse, error) {
	return l.srv.Log(ctx, in)
}

func (l *loopback) KVBatch(ctx context.Context, in *pb.KVBatchRequest, _ ...grpc.CallOption) (*pb.KVBatchResponse, error) {
	if l.oldHub {
		l.refused.Add(1)
		return nil, status.Error(codes.Unimplemented, "unknown method KVBatch for service switchboard.plugin.v1.HostServices")
	}
	if err := l.fail(ctx); err != nil {
		return nil, err
	}
	l.batches.Add(1)
	l.items.Add(int64(len(in.Ops)))
	if l.gate != nil {
		l.arrived.Add(1)
		select {
		case <-l.gate:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return l.srv.KVBatch(ctx, in)
}

type kvStep struct {
	name string
	run  func(ctx context.Context, kv KV) (string, error)
}

func describe(v string, err error) string {
	if err == nil {
		return "ok " + v
	}
	return fmt.Sprintf("err %q code=%s reason=%q retryable=%v notfound=%v conflict=%v",
		err.Error(), CodeOf(err), ReasonOf(err), IsRetryable(err), errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict))
}

// The batched client answers every op exactly as the single calls do:
// versions, not found, conflicts, TTLs.
func TestKVBatchSameAnswersAsSingleCalls(t *testing.T) {
	kvs := func() (batched, single *hostClient, clocks []*time.Time) {
		mk := func(noBatch bool) *hostClient {
			m := NewMemoryHost(nil)
			now := time.Unix(1_700_000_000, 0)
			m.now = func() time.Time { return now }
			clocks = append(clocks, &now)
			h := newKVClient(newLoopback(m), "i")
			h.noBatch.Store(noBatch)
			return h
		}
		return mk(false), mk(true), clocks
	}
	batched, single, clocks := kvs()
	ver := func(v int64, err error) (string, error) { return fmt.Sprint(v), err }
	val := func(v []byte, ver int64, err error) (string, error) { return fmt.Sprintf("%s@%d", v, ver), err }
	var v1 int64
	steps := []kvStep{
		{"get missing", func(ctx context.Context, kv KV) (string, error) { return val(kv.Get(ctx, "k")) }},
		{"delete missing", func(ctx context.Context, kv KV) (string, error) { return "", kv.Delete(ctx, "k") }},
		{"cas create", func(ctx context.Context, kv KV) (string, error) {
			v, err := kv.CompareAndSwap(ctx, "k", 0, []byte("a"), time.Hour)
			v1 = v
			return ver(v, err)
		}},
		{"cas create again", func(ctx context.Context, kv KV) (string, error) {
			return ver(kv.CompareAndSwap(ctx, "k", 0, []byte("b"), time.Hour))
		}},
		{"cas stale", func(ctx context.Context, kv KV) (string, error) {
			return ver(kv.CompareAndSwap(ctx, "k", v1+5, []byte("b"), time.Hour))
		}},
		{"cas current", func(ctx context.Context, kv KV) (string, error) {
			return ver(kv.CompareAndSwap(ctx, "k", v1, []byte("c"), time.Hour))
		}},
		{"get", func(ctx context.Context, kv KV) (string, error) { return val(kv.Get(ctx, "k")) }},
		{"put", func(ctx context.Context, kv KV) (string, error) { return ver(kv.Put(ctx, "k", []byte("d"), 0)) }},
		{"put ttl", func(ctx context.Context, kv KV) (string, error) {
			return ver(kv.Put(ctx, "t", []byte("ttl"), 90*time.Second))
		}},
		{"get ttl", func(ctx context.Context, kv KV) (string, error) { return val(kv.Get(ctx, "t")) }},
		{"expire", func(ctx context.Context, kv KV) (string, error) {
			for _, c := range clocks {
				*c = c.Add(2 * time.Minute)
			}
			return "", nil
		}},
		{"get expired", func(ctx context.Context, kv KV) (string, error) { return val(kv.Get(ctx, "t")) }},
		{"get empty value", func(ctx context.Context, kv KV) (string, error) {
			if _, err := kv.Put(ctx, "e", nil, 0); err != nil {
				return "", err
			}
			v, n, err := kv.Get(ctx, "e")
			return fmt.Sprintf("%q nil=%v @%d", v, v == nil, n), err
		}},
		{"delete", func(ctx context.Context, kv KV) (string, error) { return "", kv.Delete(ctx, "k") }},
		{"get deleted", func(ctx context.Context, kv KV) (string, error) { return val(kv.Get(ctx, "k")) }},
		{"cas deleted", func(ctx context.Context, kv KV) (string, error) {
			return ver(kv.CompareAndSwap(ctx, "k", v1, []byte("x"), 0))
		}},
		{"cancelled", func(_ context.Context, kv KV) (string, error) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return val(kv.Get(ctx, "k"))
		}},
	}
	ctx := context.Background()
	for _, s := range steps {
		if s.name == "expire" {
			_, _ = s.run(ctx, nil)
			continue
		}
		b := describe(s.run(ctx, batched))
		u := describe(s.run(ctx, single))
		if b != u {
			t.Errorf("%s: batched %s, single %s", s.name, b, u)
		}
	}
	if l := batched.c.(*loopback); l.singles.Load() != 0 || l.batches.Load() == 0 {
		t.Errorf("the batched client made %d single calls and %d batches", l.singles.Load(), l.batches.Load())
	}
}

// Concurrent KV calls leave in batches; every caller gets its own op's
// answer, errors included.
func TestKVBatchesFormUnderConcurrency(t *testing.T) {
	m := NewMemoryHost(nil)
	l := newLoopback(m)
	l.gate = make(chan struct{})
	h := newKVClient(l, "i")
	ctx := context.Background()
	if _, err := m.Put(ctx, "taken", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	const n = 300
	var wg sync.WaitGroup
	var started atomic.Int64
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			started.Add(1)
			key := fmt.Sprintf("k%d", i)
			switch i % 3 {
			case 0: // create, then read back
				if _, err := h.CompareAndSwap(ctx, key, 0, []byte(key), time.Hour); err != nil {
					errs <- fmt.Errorf("%s: create: %v", key, err)
					return
				}
				if v, _, err := h.Get(ctx, key); err != nil || string(v) != key {
					errs <- fmt.Errorf("%s: read back %q, %v", key, v, err)
				}
			case 1:
				if _, err := h.CompareAndSwap(ctx, "taken", 0, []byte("y"), 0); !errors.Is(err, ErrConflict) {
					errs <- fmt.Errorf("%s: a create of a taken key: %v, want ErrConflict", key, err)
				}
			case 2:
				if _, _, err := h.Get(ctx, "missing-"+key); !errors.Is(err, ErrNotFound) {
					errs <- fmt.Errorf("%s: a get of a missing key: %v, want ErrNotFound", key, err)
				}
			}
		})
	}
	for l.arrived.Load() == 0 || started.Load() < n {
		time.Sleep(time.Millisecond) // waits for the callers; the count below does not depend on it
	}
	close(l.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ops := int64(n + n/3) // the creates read back
	if got := l.items.Load(); got != ops {
		t.Errorf("%d ops in the batches, want %d", got, ops)
	}
	if got := l.batches.Load(); got >= ops/2 {
		t.Errorf("%d KVBatch calls for %d concurrent ops: no batching", got, ops)
	}
	if l.singles.Load() != 0 {
		t.Errorf("%d single calls", l.singles.Load())
	}
	t.Logf("%d ops in %d batches", ops, l.batches.Load())
}

// A caller who gives up returns at once; the rest of its batch goes on.
func TestKVBatchCallerGivesUp(t *testing.T) {
	l := newLoopback(NewMemoryHost(nil))
	l.gate = make(chan struct{})
	h := newKVClient(l, "i")
	done := make(chan error, 1)
	go func() { _, err := h.Put(context.Background(), "a", []byte("1"), 0); done <- err }()
	for l.arrived.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { _, _, err := h.Get(ctx, "a"); gaveUp <- err }()
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("the caller who gave up: %v", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if _, _, err := h.Get(dctx, "a"); !IsRetryable(err) || ReasonOf(err) != "timeout" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a caller whose deadline passed while queued: %v (reason %q)", err, ReasonOf(err))
	}
	close(l.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v, _, err := h.Get(context.Background(), "a"); err != nil || string(v) != "1" {
		t.Fatalf("after: %q, %v", v, err)
	}
}

// hangingBackend blocks Get of "hang" until the op's context ends.
type hangingBackend struct{ *MemoryHost }

func (b hangingBackend) Get(ctx context.Context, key string) ([]byte, int64, error) {
	if key == "hang" {
		<-ctx.Done()
		return nil, 0, ctx.Err()
	}
	return b.MemoryHost.Get(ctx, key)
}

// Each op runs on the hub under its caller's deadline, not the batch's.
func TestKVBatchOpDeadlines(t *testing.T) {
	l := newLoopback(hangingBackend{NewMemoryHost(nil)})
	h := newKVClient(l, "i")
	res, err := l.KVBatch(context.Background(), &pb.KVBatchRequest{Ops: []*pb.KVOp{
		{Op: &pb.KVOp_Get{Get: &pb.KVGetRequest{Key: "hang"}}, Timeout: durationpb.New(50 * time.Millisecond)},
		{Op: &pb.KVOp_Put{Put: &pb.KVPutRequest{Key: "p", Value: []byte("v")}}},
		{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if e := res.Results[0].GetError(); e == nil || codes.Code(e.GrpcCode) != codes.DeadlineExceeded {
		t.Errorf("the hanging op: %v", res.Results[0])
	}
	if res.Results[1].GetPut().GetVersion() == 0 {
		t.Errorf("the put beside it: %v", res.Results[1])
	}
	if e := res.Results[2].GetError(); e == nil || codes.Code(e.GrpcCode) != codes.InvalidArgument {
		t.Errorf("an empty op: %v", res.Results[2])
	}
	// Through the client: the hanging op times out, its neighbour does not.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, _, err := h.Get(ctx, "hang"); !IsRetryable(err) || ReasonOf(err) != "timeout" {
			t.Errorf("hanging get: %v", err)
		}
	})
	wg.Go(func() {
		if _, _, err := h.Get(context.Background(), "p"); err != nil {
			t.Errorf("get beside it: %v", err)
		}
	})
	wg.Wait()
}

// A hub that predates KVBatch: the client falls back to single calls for
// good, after at most the batches already in flight were refused.
func TestKVBatchFallbackForAnOlderHub(t *testing.T) {
	l := newLoopback(NewMemoryHost(nil))
	l.oldHub = true
	h := newKVClient(l, "i")
	round := func(prefix string) {
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				key := fmt.Sprintf("%s%d", prefix, i)
				if _, err := h.CompareAndSwap(context.Background(), key, 0, []byte(key), 0); err != nil {
					t.Errorf("%s: %v", key, err)
				}
				if _, err := h.CompareAndSwap(context.Background(), key, 0, []byte(key), 0); !errors.Is(err, ErrConflict) {
					t.Errorf("%s: second create: %v", key, err)
				}
			})
		}
		wg.Wait()
	}
	round("a")
	refused := l.refused.Load()
	if refused == 0 || refused > kvBatchInFlight {
		t.Errorf("%d batches refused before falling back, want 1 to %d", refused, kvBatchInFlight)
	}
	round("b")
	if l.refused.Load() != refused {
		t.Errorf("%d more batches tried after the hub refused them", l.refused.Load()-refused)
	}
	if l.singles.Load() != 200 {
		t.Errorf("%d single calls, want 200", l.singles.Load())
	}
}

// A batch that fails as a whole fails each op as its single call would.
func TestKVBatchWholeFailure(t *testing.T) {
	batched := newKVClient(&loopback{down: true}, "i")
	single := newKVClient(&loopback{down: true}, "i")
	single.noBatch.Store(true)
	_, _, be := batched.Get(context.Background(), "k")
	_, _, se := single.Get(context.Background(), "k")
	if describe("", be) != describe("", se) || ReasonOf(be) != "plugin_unavailable" {
		t.Errorf("batched %v, single %v", be, se)
	}
}

// BenchmarkHostKV compares 64 concurrent KV gets from a plugin sent as
// single calls and batched by the host client, over real gRPC on loopback
// TCP (without the TLS the broker adds, which batching also saves). One op
// is 64 gets.
func BenchmarkHostKV(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	sb := &swappableBackend{}
	mem := NewMemoryHost(nil)
	sb.set(mem)
	pb.RegisterHostServicesServer(srv, &hostServer{backend: sb})
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	ctx := context.Background()
	for i := range 64 {
		if _, err := mem.Put(ctx, fmt.Sprintf("k%d", i), []byte("refresh-token-value"), 0); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []string{"single", "batched"} {
		b.Run(mode, func(b *testing.B) {
			h := newKVClient(pb.NewHostServicesClient(conn), "i")
			h.noBatch.Store(mode == "single")
			b.ReportAllocs()
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range 64 {
					wg.Go(func() {
						tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
						defer cancel()
						if _, _, err := h.Get(tctx, fmt.Sprintf("k%d", i)); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/get")
		})
	}
}
