package reliability

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
)

// privateRedis is a redis-server of the test's own, on a free loopback
// port, with the append-only file on: every write is in the AOF (in the
// OS's page cache) before Redis answers, so killing the Redis process
// loses nothing it acknowledged. (appendfsync everysec: a machine crash
// could lose the last second; see docs/reliability.md.)
type privateRedis struct {
	t    *testing.T
	bin  string
	dir  string
	port string
	cmd  *exec.Cmd
	done chan struct{}
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is required in CI")
		}
		t.Skip("no redis-server binary")
	}
	addr := hubtest.FreeAddr(t)
	r := &privateRedis{t: t, bin: bin, dir: t.TempDir(), port: addr[strings.LastIndexByte(addr, ':')+1:]}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) url() string { return "redis://127.0.0.1:" + r.port + "/0" }

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "--port", r.port, "--bind", "127.0.0.1", "--dir", r.dir, "--save", "",
		"--appendonly", "yes", "--appendfsync", "everysec")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	hubtest.Eventually(r.t, 20*time.Second, "redis up", func() bool {
		out, err := exec.Command("redis-cli", "-p", r.port, "ping").Output()
		return err == nil && strings.TrimSpace(string(out)) == "PONG"
	})
}

// kill SIGKILLs the server: a crash, not a shutdown.
func (r *privateRedis) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// Redis is killed in the middle of the deliveries and comes back a few
// seconds later: meanwhile the hub answers 503 (never a 2xx for something
// it could not store), the provider retries, and every message the hub
// acknowledged, before or after, gets its reply.
func TestRedisDownDuringIngest(t *testing.T) {
	m := suite(t)
	r := startPrivateRedis(t)
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	hub := hubtest.Start(t, bins, dir, setup{bins: bins, sink: sink, dir: dir,
		store: fmt.Sprintf("  redis: { url: %q }", r.url())}.config())
	convs, perConv := m.n(50, 200), m.n(20, 50)
	total := convs * perConv
	outages := m.n(1, 3)
	p := &provider{hubs: func() []*hubtest.Hub { return []*hubtest.Hub{hub} },
		retryPause: func() time.Duration { return 100 * time.Millisecond }}
	ctx, cancel := context.WithTimeout(context.Background(), m.d(4*time.Minute, 10*time.Minute))
	defer cancel()
	lim := newLimiter(ctx, float64(total)/(float64(outages)*8+4))
	var down atomic.Bool
	var ackedWhileDown atomic.Int64
	var wg sync.WaitGroup
	for c := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("rd-u%d", c)
			for s := range perConv {
				lim.wait(ctx)
				if err := p.deliver(ctx, 0, canaryMessage(fmt.Sprintf("rd-%d-%d", c, s), user, c*perConv+s)); err != nil {
					t.Errorf("%s message %d: %v", user, s, err)
					return
				}
				if down.Load() {
					ackedWhileDown.Add(1)
				}
			}
		}()
	}
	var downFor time.Duration
	for i := range outages {
		// Let traffic flow, then take Redis away for a few seconds.
		hubtest.Eventually(t, time.Minute, "deliveries before the outage", func() bool {
			return p.acked.Load() >= int64(total*(2*i+1)/(2*outages+1))
		})
		before5xx := p.got5xx.Load()
		start := time.Now()
		r.kill()
		down.Store(true)
		// An outage of a few seconds, during which deliveries are refused.
		hubtest.Eventually(t, 30*time.Second, "503s during a 2 s outage", func() bool {
			return time.Since(start) > 2*time.Second && p.got5xx.Load() > before5xx+10
		})
		down.Store(false)
		r.start()
		downFor += time.Since(start)
	}
	wg.Wait()
	waitDistinct(t, sink, total, m.d(2*time.Minute, 5*time.Minute))
	rc := checkSink(sink)
	report(t, m, "%d messages, Redis SIGKILLed %d time(s) (down %s in all, AOF on): %d 503 answers, %d retries, %d of %d acknowledged messages missing, %d out of order, %d duplicate replies",
		total, outages, downFor.Round(100*time.Millisecond), p.got5xx.Load(), p.tries.Load()-int64(total), total-rc.distinct, total, rc.outOfOrder, rc.duplicates)
	if rc.distinct != total || rc.outOfOrder != 0 {
		t.Errorf("%d distinct replies of %d acknowledged messages, %d out of order", rc.distinct, total, rc.outOfOrder)
	}
	if p.got5xx.Load() == 0 {
		t.Error("no 503 while Redis was down")
	}
	report(t, m, "canaries found raw in %d log lines", checkCanaries(t, hub.Log()))
}
