package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
)

const mod = "github.com/switchboard-hub/switchboard/"

func postgresURL() string {
	if u := os.Getenv("POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

func requirePostgres(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresURL())
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("PostgreSQL unreachable: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// replicas is a set of hub processes sharing one store, some of them
// being restarted at any moment.
type replicas struct {
	mu   sync.Mutex
	live []*hubtest.Hub
	all  []*hubtest.Hub // every process started, for the log scan
}

func (r *replicas) get() []*hubtest.Hub {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*hubtest.Hub(nil), r.live...)
}

func (r *replicas) add(h *hubtest.Hub) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live = append(r.live, h)
	r.all = append(r.all, h)
}

// killRandom SIGKILLs one live replica at random and returns it.
func (r *replicas) killRandom() *hubtest.Hub {
	r.mu.Lock()
	i := rand.IntN(len(r.live))
	h := r.live[i]
	r.live = append(r.live[:i:i], r.live[i+1:]...)
	r.mu.Unlock()
	h.Kill()
	return h
}

func (r *replicas) logs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return hubLogs(r.all...)
}

// limiter paces deliveries so that the kills fall during them.
type limiter struct{ tick <-chan time.Time }

func newLimiter(ctx context.Context, perSec float64) *limiter {
	t := time.NewTicker(time.Duration(float64(time.Second) / perSec))
	go func() { <-ctx.Done(); t.Stop() }()
	return &limiter{tick: t.C}
}

func (l *limiter) wait(ctx context.Context) {
	select {
	case <-l.tick:
	case <-ctx.Done():
	}
}

// Three replicas on one Redis, a random one SIGKILLed every few seconds
// and restarted, while a provider delivers messages to whichever answers:
// every acknowledged message gets its reply, in order, the SQL CRM (on
// PostgreSQL, shared by the replicas) gets exactly one contact per
// customer and one note per message, and duplicate sends (a kill between
// the provider's accept and our record) are counted.
func TestKillReplicasDuringDeliveries(t *testing.T) {
	m := suite(t)
	db := requirePostgres(t)
	prefix := redisPrefix(t)
	schema := fmt.Sprintf("sbrel_%d", time.Now().UnixNano())
	t.Cleanup(func() { _, _ = db.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	bins := hubtest.Build(t)
	crmBin := testkit.BuildPlugin(t, mod+"plugins/postgrescrm")
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	convs, perConv := m.n(100, 200), m.n(20, 50)
	total := convs * perConv
	minKills := m.n(5, 20)
	every := m.d(2*time.Second, 3*time.Second)
	cfg := setup{bins: bins, sink: sink, dir: dir, store: redisStore(prefix),
		plugs: fmt.Sprintf("  - { name: crm, kind: crm, path: %s, config: { dsn: %q, schema: %s, max_conns: 4 } }\n", crmBin, postgresURL(), schema),
	}.config()
	rs := &replicas{}
	for range 3 {
		rs.add(hubtest.Start(t, bins, dir, cfg))
	}
	p := &provider{hubs: rs.get}
	ctx, cancel := context.WithTimeout(context.Background(), m.d(5*time.Minute, 15*time.Minute))
	defer cancel()
	// Pace the deliveries to last through the kills.
	lim := newLimiter(ctx, float64(total)/(float64(minKills+2)*every.Seconds()))

	var kills atomic.Int64
	killDone := make(chan struct{})
	deliveriesDone := make(chan struct{})
	go func() {
		defer close(killDone)
		for {
			select {
			case <-deliveriesDone:
				return
			case <-time.After(every/2 + rand.N(every)):
			}
			old := rs.killRandom()
			kills.Add(1)
			rs.add(hubtest.StartFile(t, bins, old.ConfigPath, old.Webhooks, old.Admin))
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for c := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("kill-u%d", c)
			for s := range perConv {
				lim.wait(ctx)
				// Spread the messages over the kills, so that at least
				// minKills fall during the deliveries however slowly
				// the machine restarts replicas.
				for kills.Load() < int64(s*(minKills+1)/perConv) && ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
				seq := c*perConv + s
				if err := p.deliver(ctx, c+s, canaryMessage(fmt.Sprintf("kill-%d-%d", c, s), user, seq)); err != nil {
					failed.Add(1)
					t.Errorf("%s message %d never acknowledged: %v", user, s, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(deliveriesDone)
	<-killDone
	sent := time.Since(start)
	waitDistinct(t, sink, total, m.d(3*time.Minute, 6*time.Minute))
	rc := checkSink(sink)

	var contacts, notes, noteKeys int
	for q, v := range map[string]*int{
		"SELECT count(*) FROM " + schema + ".contacts":                        &contacts,
		"SELECT count(*) FROM " + schema + ".notes":                           &notes,
		"SELECT count(*) FROM " + schema + ".idempotency WHERE kind = 'note'": &noteKeys,
	} {
		if err := db.QueryRow(ctx, q).Scan(v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	crmDup := (contacts - convs) + (notes - total)
	report(t, m, "%d messages over %d conversations, 3 replicas on Redis, %d SIGKILLs in %s (min %d): %d lost, %d replies out of order, %d duplicate CRM writes (contacts %d for %d customers, notes %d for %d messages, note keys %d), %d duplicate replies; %d provider retries (%d 5xx, %d no answer)",
		total, convs, kills.Load(), sent.Round(time.Second), minKills, total-rc.distinct, rc.outOfOrder, crmDup, contacts, convs, notes, total, noteKeys,
		rc.duplicates, p.tries.Load()-int64(total), p.got5xx.Load(), p.gotErr.Load())
	if int(kills.Load()) < minKills {
		t.Errorf("only %d kills during the deliveries, want at least %d", kills.Load(), minKills)
	}
	if rc.distinct != total || rc.outOfOrder != 0 || failed.Load() != 0 {
		t.Errorf("%d distinct replies of %d, %d out of order", rc.distinct, total, rc.outOfOrder)
	}
	if contacts != convs || notes != total {
		t.Errorf("CRM: %d contacts for %d customers, %d notes for %d messages", contacts, convs, notes, total)
	}
	// A conversation has one task in flight, so a kill can duplicate at
	// most one send per conversation.
	if rc.duplicates > int(kills.Load())*convs {
		t.Errorf("%d duplicate sends after %d kills: more than one per conversation per kill", rc.duplicates, kills.Load())
	}
	report(t, m, "canaries found raw in %d log lines of %d hub processes", checkCanaries(t, rs.logs()...), len(rs.logs()))
}

// The duplicate storm: every message delivered three times, in shuffled
// order, each time to a random replica: exactly one reply per message.
func TestDuplicateStorm(t *testing.T) {
	m := suite(t)
	prefix := redisPrefix(t)
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	total := m.n(2000, 10000)
	cfg := setup{bins: bins, sink: sink, dir: dir, store: redisStore(prefix)}.config()
	rs := &replicas{}
	for range 3 {
		rs.add(hubtest.Start(t, bins, dir, cfg))
	}
	type delivery struct{ msg, copy int }
	var ds []delivery
	for i := range total {
		for c := range 3 {
			ds = append(ds, delivery{i, c})
		}
	}
	rand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	ctx, cancel := context.WithTimeout(context.Background(), m.d(4*time.Minute, 10*time.Minute))
	defer cancel()
	p := &provider{hubs: rs.get}
	work := make(chan delivery)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				user := fmt.Sprintf("storm-u%d", d.msg%500)
				if err := p.deliver(ctx, rand.IntN(3), canaryMessage(fmt.Sprintf("storm-%d", d.msg), user, d.msg)); err != nil {
					t.Errorf("delivery: %v", err)
				}
			}
		}()
	}
	for _, d := range ds {
		work <- d
	}
	close(work)
	wg.Wait()
	waitDistinct(t, sink, total, m.d(3*time.Minute, 6*time.Minute))
	// Duplicates would be processed right behind the originals (same
	// conversation lane), so once every message has its reply a late
	// duplicate reply has had its chance: wait for the queues to drain.
	hubtest.Eventually(t, time.Minute, "the queue to drain", func() bool {
		return rs.get()[0].Metric("switchboard_queue_depth") == 0
	})
	var dupEvents float64
	for _, h := range rs.get() {
		dupEvents += h.Metric("switchboard_duplicate_events_total")
	}
	rc := checkSink(sink)
	report(t, m, "%d messages x 3 deliveries shuffled over 3 replicas: %d replies (%d sends), %d duplicate events dropped by the dedupe",
		total, rc.distinct, rc.total, int(dupEvents))
	if rc.distinct != total || rc.total != total {
		t.Errorf("%d distinct replies, %d sends, want exactly %d", rc.distinct, rc.total, total)
	}
	report(t, m, "canaries found raw in %d log lines", checkCanaries(t, rs.logs()...))
}
