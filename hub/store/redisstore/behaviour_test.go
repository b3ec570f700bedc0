package redisstore_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/hub/store/redisstore"
)

func TestOpenUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = redisstore.Open(ctx, redisstore.Options{URL: "redis://" + addr + "/0?max_retries=-1", Prefix: "x:"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open with no server: %v, want ErrUnavailable", err)
	}
}

// proxy forwards TCP to Redis and can be cut and restored, to show calls
// failing with ErrUnavailable while Redis is unreachable and working again
// afterwards (what ingress turns into 503 and then 2xx).
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func (p *proxy) start(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func TestUnavailableAndRecovery(t *testing.T) {
	requireRedis(t)
	o, _ := redis.ParseURL(redisURL())
	px := &proxy{addr: "127.0.0.1:0", target: o.Addr}
	px.start(t)
	defer px.cut()
	prefix := testPrefix(t)
	ctx := context.Background()
	s, err := redisstore.Open(ctx, redisstore.Options{
		URL:    "redis://" + px.addr + "/" + itoa(o.DB) + "?dial_timeout=200ms&read_timeout=500ms&max_retries=1",
		Prefix: prefix, Partitions: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Enqueue(ctx, "k", []byte("before")); err != nil {
		t.Fatal(err)
	}
	px.cut()
	if _, err := s.Enqueue(ctx, "k", []byte("during")); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Enqueue while Redis is unreachable: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping while Redis is unreachable: %v", err)
	}
	px.start(t) // same address again
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Enqueue(ctx, "k", []byte("after"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d, err := s.Depth(ctx); err != nil || d != 2 {
		t.Fatalf("depth %d, %v; want 2 (before, after)", d, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestNoGroupRecovery(t *testing.T) {
	requireRedis(t)
	prefix := testPrefix(t)
	s := open(t, prefix)
	ctx := context.Background()
	p := s.PartitionOf("k")
	// The stream and its group vanish (FLUSHDB, an operator's DEL).
	if err := s.Client().Del(ctx, prefix+"q:{"+itoa(p)+"}").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, "k", []byte("x")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(ctx, p, "c", 10, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("read after the group vanished: %v %v", got, err)
	}
}

func TestAckForeignID(t *testing.T) {
	requireRedis(t)
	s := open(t, testPrefix(t))
	ctx := context.Background()
	id, _ := s.Enqueue(ctx, "k", []byte("x"))
	other := (s.PartitionOf("k") + 1) % s.Partitions()
	if err := s.Ack(ctx, other, id); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("ack with another partition's id: %v", err)
	}
}

func TestReadCancel(t *testing.T) {
	requireRedis(t)
	s := open(t, testPrefix(t))
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := s.Read(ctx, 0, "c", 1, 3*time.Second)
	if el := time.Since(start); el > 2*time.Second || !errors.Is(err, context.Canceled) {
		t.Fatalf("Read returned after %v with %v; want context.Canceled within about a second", el, err)
	}
}
