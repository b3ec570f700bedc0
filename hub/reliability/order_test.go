package reliability

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
)

// 1,000 conversations x 20 messages (fewer in short mode), all
// conversations at once, each conversation's messages one after the
// other (as a customer types), every delivery to either of two replicas on
// one Redis: each conversation's replies come back in the order of its
// messages.
func TestInterleavedConversationsKeepOrder(t *testing.T) {
	m := suite(t)
	prefix := redisPrefix(t)
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	cfg := setup{bins: bins, sink: sink, dir: dir, store: redisStore(prefix), pipe: "  workers: 512\n"}.config()
	rs := &replicas{}
	rs.add(hubtest.Start(t, bins, dir, cfg))
	rs.add(hubtest.Start(t, bins, dir, cfg))
	convs, perConv := m.n(200, 1000), 20
	total := convs * perConv
	p := &provider{hubs: rs.get}
	ctx, cancel := context.WithTimeout(context.Background(), m.d(4*time.Minute, 15*time.Minute))
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("ord-u%d", c)
			for s := range perConv {
				if err := p.deliver(ctx, s, canaryMessage(fmt.Sprintf("ord-%d-%d", c, s), user, c*perConv+s)); err != nil {
					t.Errorf("%s message %d: %v", user, s, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitDistinct(t, sink, total, m.d(3*time.Minute, 10*time.Minute))
	took := time.Since(start)
	rc := checkSink(sink)
	short := 0
	for _, seqs := range rc.byUser {
		if len(seqs) != perConv {
			short++
		}
	}
	report(t, m, "%d conversations x %d interleaved messages over 2 replicas in %s: %d replies out of order, %d replies (%d conversations with a reply missing), %d duplicate replies (%d partition leases lost on the way)",
		convs, perConv, took.Round(time.Second), rc.outOfOrder, rc.distinct, short, rc.duplicates, leaseMoves(rs.logs()...))
	if rc.outOfOrder != 0 || rc.distinct != total || short != 0 {
		t.Errorf("%d out of order, %d of %d replies, %d conversations short", rc.outOfOrder, rc.distinct, total, short)
	}
	report(t, m, "canaries found raw in %d log lines", checkCanaries(t, rs.logs()...))
}
