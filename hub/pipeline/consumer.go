package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// nsReplicas holds a heartbeat per live hub process, to share partitions.
const nsReplicas = "replicas"

// Run consumes the queue and fires timers until ctx ends, then stops
// taking work, lets in-flight tasks finish for up to drain, releases its
// partitions so another replica takes over at once, and returns.
//
// Ordering: a partition is owned by one replica at a time through a lease;
// within it, tasks of one conversation run one after another in a lane,
// while different conversations run in parallel up to Workers.
func (p *Pipeline) Run(ctx context.Context, drain time.Duration) error {
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	c := &coordinator{p: p, owned: map[int]*partition{}, draining: map[int]chan struct{}{}, work: work}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.leaseLoop(ctx) }()
	go func() { defer wg.Done(); p.timerLoop(ctx) }()
	go p.depthLoop(ctx)
	<-ctx.Done()
	wg.Wait()
	// Stop reading; let lanes finish what they hold, up to drain.
	done := make(chan struct{})
	go func() { c.stopAll(); close(done) }()
	select {
	case <-done:
	case <-time.After(drain):
		p.log.Warn("drain deadline passed; unfinished tasks stay pending for another replica")
		stopWork()
		<-done
	}
	c.releaseAll()
	_ = p.o.Store.Delete(context.Background(), nsReplicas, p.o.Replica)
	return nil
}

type coordinator struct {
	p        *Pipeline
	work     context.Context
	mu       sync.Mutex
	owned    map[int]*partition
	draining map[int]chan struct{} // partitions whose lanes are still finishing
	epoch    int
}

type partition struct {
	n        int
	consumer string
	stop     chan struct{}
	done     chan struct{}
	lanes    map[string]*lane
	mu       sync.Mutex
	flight   chan struct{} // read-ahead bound
	wg       sync.WaitGroup
}

type lane struct {
	queue []store.Entry
}

func leaseName(n int) string { return "partition:" + strconv.Itoa(n) }

// leaseLoop keeps this replica's fair share of partitions: it heartbeats,
// counts live replicas, renews what it owns and acquires free partitions
// until it holds ceil(P/replicas), releasing any surplus.
func (c *coordinator) leaseLoop(ctx context.Context) {
	p := c.p
	every := p.o.LeaseTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		c.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *coordinator) tick(ctx context.Context) {
	p := c.p
	s := p.o.Store
	if _, err := s.Put(ctx, nsReplicas, p.o.Replica, []byte(p.now().Format(time.RFC3339)), p.o.LeaseTTL); err != nil {
		p.log.Warn("replica heartbeat failed", "err", err)
		return
	}
	live := 0
	cursor := ""
	for {
		items, next, err := s.List(ctx, nsReplicas, "", cursor, 100)
		if err != nil {
			return
		}
		live += len(items)
		if next == "" {
			break
		}
		cursor = next
	}
	live = max(live, 1)
	P := s.Partitions()
	share := (P + live - 1) / live

	c.mu.Lock()
	owned := make([]int, 0, len(c.owned))
	for n := range c.owned {
		owned = append(owned, n)
	}
	c.mu.Unlock()
	sort.Ints(owned)
	for _, n := range owned {
		ok, err := s.Renew(ctx, leaseName(n), p.o.Replica, p.o.LeaseTTL)
		if err != nil || !ok {
			p.log.Warn("lost partition lease", "partition", n, "err", err)
			c.drop(n, false)
		}
	}
	c.mu.Lock()
	have := len(c.owned)
	c.mu.Unlock()
	// Start at a replica-specific offset so replicas do not all race for
	// partition 0 first.
	start := int(hash32(p.o.Replica) % uint32(P))
	for i := 0; i < P && have < share; i++ {
		n := (start + i) % P
		c.mu.Lock()
		_, mine := c.owned[n]
		_, busy := c.draining[n]
		c.mu.Unlock()
		if mine || busy {
			continue // our own lanes of n are still finishing: taking it now could reorder
		}
		ok, err := s.Acquire(ctx, leaseName(n), p.o.Replica, p.o.LeaseTTL)
		if err != nil || !ok {
			continue
		}
		c.start(n)
		have++
	}
	for have > share {
		c.mu.Lock()
		var n int
		for k := range c.owned {
			n = k
			break
		}
		c.mu.Unlock()
		c.drop(n, true)
		have--
	}
	p.m.Partitions.Set(float64(have))
}

func hash32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// start begins consuming partition n under a consumer name new to this
// ownership: every entry pending in the partition then belongs to an
// earlier owner (a dead replica, or ourselves before a hand-over), and
// Reclaim hands all of them over before new entries are read.
func (c *coordinator) start(n int) {
	c.mu.Lock()
	c.epoch++
	pt := &partition{n: n, consumer: fmt.Sprintf("%s/p%d/%d", c.p.o.Replica, n, c.epoch), stop: make(chan struct{}),
		done: make(chan struct{}), lanes: map[string]*lane{}, flight: make(chan struct{}, c.p.o.MaxInFlight)}
	c.owned[n] = pt
	c.mu.Unlock()
	go c.read(pt)
}

// drop stops reading a partition and lets its lanes finish in the
// background (the lease loop must keep renewing the others meanwhile);
// then it releases the lease if asked.
func (c *coordinator) drop(n int, release bool) {
	c.mu.Lock()
	pt := c.owned[n]
	delete(c.owned, n)
	drained := make(chan struct{})
	if pt != nil {
		c.draining[n] = drained
	}
	c.mu.Unlock()
	if pt == nil {
		return
	}
	close(pt.stop)
	go func() {
		<-pt.done
		pt.wg.Wait()
		if release {
			_ = c.p.o.Store.Release(context.Background(), leaseName(n), c.p.o.Replica)
		}
		c.mu.Lock()
		delete(c.draining, n)
		c.mu.Unlock()
		close(drained)
	}()
}

func (c *coordinator) stopAll() {
	c.mu.Lock()
	var all []*partition
	for _, pt := range c.owned {
		all = append(all, pt)
	}
	var drains []chan struct{}
	for _, d := range c.draining {
		drains = append(drains, d)
	}
	c.mu.Unlock()
	for _, pt := range all {
		close(pt.stop)
	}
	for _, pt := range all {
		<-pt.done
		pt.wg.Wait()
	}
	for _, d := range drains {
		<-d
	}
}

func (c *coordinator) releaseAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n := range c.owned {
		_ = c.p.o.Store.Release(context.Background(), leaseName(n), c.p.o.Replica)
		delete(c.owned, n)
	}
}

// read takes over what a previous owner left pending, then reads new
// entries, handing each to its conversation's lane.
func (c *coordinator) read(pt *partition) {
	defer close(pt.done)
	p := c.p
	s := p.o.Store
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-pt.stop:
		case <-c.work.Done():
		}
		cancel()
	}()
	consumer := pt.consumer
	// The lease makes this replica the partition's only reader, so the
	// previous owner's pending entries can be taken without waiting.
	for ctx.Err() == nil {
		entries, err := s.Reclaim(ctx, pt.n, consumer, 0, 256)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("reclaim failed", "partition", pt.n, "err", err)
				sleepCtx(ctx, time.Second)
				continue
			}
			return
		}
		c.dispatch(ctx, pt, entries)
		if len(entries) < 256 {
			break
		}
	}
	for ctx.Err() == nil {
		entries, err := s.Read(ctx, pt.n, consumer, 64, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("queue read failed", "partition", pt.n, "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		c.dispatch(ctx, pt, entries)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (c *coordinator) dispatch(ctx context.Context, pt *partition, entries []store.Entry) {
	for _, e := range entries {
		select {
		case pt.flight <- struct{}{}:
		case <-ctx.Done():
			return // the entry stays pending for the next owner
		}
		pt.mu.Lock()
		l, running := pt.lanes[e.Key]
		if !running {
			l = &lane{}
			pt.lanes[e.Key] = l
		}
		l.queue = append(l.queue, e)
		pt.mu.Unlock()
		if !running {
			pt.wg.Add(1)
			go c.runLane(pt, e.Key, l)
		}
	}
}

// runLane handles the entries of one conversation in order, then exits.
func (c *coordinator) runLane(pt *partition, key string, l *lane) {
	defer pt.wg.Done()
	for {
		pt.mu.Lock()
		if len(l.queue) == 0 {
			delete(pt.lanes, key)
			pt.mu.Unlock()
			return
		}
		e := l.queue[0]
		l.queue = l.queue[1:]
		stopped := false
		select {
		case <-pt.stop:
			stopped = true
		default:
		}
		pt.mu.Unlock()
		if stopped {
			// Shutting down: leave the rest pending, in order, for the next
			// owner.
			<-pt.flight
			continue
		}
		c.p.sem <- struct{}{}
		c.p.handle(c.work, e)
		<-c.p.sem
		<-pt.flight
	}
}

// handle runs one entry to completion: processed and acked, dead-lettered
// and acked, or (on shutdown) left pending. The caller holds a worker
// (p.sem) and still holds one when handle returns.
func (p *Pipeline) handle(ctx context.Context, e store.Entry) {
	start := p.now()
	task, err := decodeTask(e.Payload)
	if err != nil {
		p.deadLetter(ctx, e, nil, err, e.Deliveries)
		return
	}
	if e.Deliveries > p.o.MaxDeliveries {
		p.deadLetter(ctx, e, task, fmt.Errorf("delivered %d times without completing (the hub may have crashed on it)", e.Deliveries-1), e.Deliveries-1)
		return
	}
	// attempt counts the tries (process dedupes on the first); charged
	// those that count against MaxDeliveries: a plugin that was not
	// running never saw the task, and a message must not be dead-lettered
	// because a plugin crash-loops on another message. A plugin that died
	// during the task's call may have been killed by any call in flight,
	// so the task is retried with its calls made alone (sdk.Isolate): a
	// death then is its own doing, and only then is it charged.
	attempt, charged := e.Deliveries, e.Deliveries
	alone := false
	for {
		pctx := ctx
		if alone {
			pctx = sdk.Isolate(ctx)
		}
		err = p.process(pctx, task, attempt)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return // shutting down: stays pending
		}
		p.m.Retries.WithLabelValues(task.Kind).Inc()
		died := errors.Is(err, sdk.ErrPluginDied)
		free := errors.Is(err, sdk.ErrNotRunning) || (died && !alone)
		if died && !alone {
			alone = true
			p.m.Isolated.Inc()
		}
		if !sdk.IsRetryable(err) || (!free && charged >= p.o.MaxDeliveries) {
			p.deadLetter(ctx, e, task, err, charged)
			return
		}
		wait := p.backoff(charged, err)
		if !free {
			charged++
		}
		p.log.Warn("task failed; retrying", "conv", task.Conv, "kind", task.Kind, "attempt", attempt, "wait", wait, "err", err)
		// A task waiting for its retry holds its lane (its conversation's
		// order), not a worker: other conversations run meanwhile.
		<-p.sem
		sleepCtx(ctx, wait)
		p.sem <- struct{}{}
		if ctx.Err() != nil {
			return
		}
		attempt++
	}
	if err := p.o.Store.Ack(context.WithoutCancel(ctx), e.Partition, e.ID); err != nil {
		// Not fatal: the entry will be redelivered and its effects are idempotent.
		p.log.Warn("ack failed", "entry", e.ID, "err", err)
	}
	p.m.Processed.WithLabelValues(task.Kind).Inc()
	p.m.Stage.WithLabelValues("total").Observe(p.now().Sub(start).Seconds())
	if task.Kind == TaskEvent && !task.ReceivedAt.IsZero() {
		p.m.EndToEnd.Observe(p.now().Sub(task.ReceivedAt).Seconds())
	}
}

// DeadLetterRecord is the dead letter's task as the admin API shows it.
func (p *Pipeline) deadLetter(ctx context.Context, e store.Entry, task *Task, cause error, attempts int) {
	ctx = context.WithoutCancel(ctx)
	d := store.DeadLetter{ID: e.ID, Entry: e, Error: cause.Error(), Attempts: attempts, At: p.now()}
	if err := p.o.Store.PutDead(ctx, d); err != nil {
		// Without the dead letter the message would be lost: leave it
		// pending instead, to be retried by the next owner.
		p.log.Error("dead letter failed; leaving the task pending", "entry", e.ID, "err", err)
		return
	}
	_ = p.o.Store.Ack(ctx, e.Partition, e.ID)
	p.m.DeadLetters.Inc()
	conv, kind := "", ""
	if task != nil {
		conv, kind = task.Conv, task.Kind
	}
	p.log.Error("task dead-lettered", "entry", e.ID, "conv", conv, "kind", kind, "attempts", attempts, "err", cause)
	p.Audit(ctx, AuditRecord{Kind: "dead_letter", Conv: conv, Key: e.ID, Detail: cause.Error()})
}

// Enqueue puts a task on the queue under its conversation.
func (p *Pipeline) Enqueue(ctx context.Context, t *Task) (string, error) {
	b, err := encodeTask(t)
	if err != nil {
		return "", err
	}
	return p.o.Store.Enqueue(ctx, t.Conv, b)
}

// Replay puts a dead letter back on the queue and removes it from the list.
func (p *Pipeline) Replay(ctx context.Context, id string) error {
	d, err := p.o.Store.GetDead(ctx, id)
	if err != nil {
		return err
	}
	task, err := decodeTask(d.Entry.Payload)
	if err != nil {
		return fmt.Errorf("dead letter %s cannot be replayed: %w", id, err)
	}
	task.Replay = true
	if _, err := p.Enqueue(ctx, task); err != nil {
		return err
	}
	return p.o.Store.DeleteDead(ctx, id)
}

func (p *Pipeline) depthLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		if d, err := p.o.Store.Depth(ctx); err == nil {
			p.m.QueueDepth.Set(float64(d))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ---------------------------------------------------------------- timers

// TimerHandler handles a due timer. Returning an error leaves the timer to
// fire again after its claim lease.
type TimerHandler func(ctx context.Context, payload json.RawMessage) error

const timerEnqueue = "enqueue"

type timerPayload struct {
	Kind string          `json:"kind"`
	Data json.RawMessage `json:"data"`
}

// HandleTimers registers a handler for a timer kind (SLA, follow-ups).
func (p *Pipeline) HandleTimers(kind string, h TimerHandler) { p.timerHandlers[kind] = h }

// Schedule sets timer id (replacing one with the same id) to call the
// handler of kind with data at due.
func (p *Pipeline) Schedule(ctx context.Context, id string, due time.Time, kind string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	pl, _ := json.Marshal(timerPayload{Kind: kind, Data: b})
	return p.o.Store.Schedule(ctx, id, due, pl)
}

// CancelTimer removes a timer.
func (p *Pipeline) CancelTimer(ctx context.Context, id string) error {
	return p.o.Store.Cancel(ctx, id)
}

// scheduleTask enqueues t when due: quiet windows and paced sends go
// through here so no worker waits.
func (p *Pipeline) scheduleTask(ctx context.Context, id string, due time.Time, t *Task) error {
	return p.Schedule(ctx, id, due, timerEnqueue, t)
}

func (p *Pipeline) fireEnqueue(ctx context.Context, data json.RawMessage) error {
	var t Task
	if err := json.Unmarshal(data, &t); err != nil {
		return nil // a malformed timer will not get better
	}
	_, err := p.Enqueue(ctx, &t)
	return err
}

// timerLoop claims due timers. A claim is a lease: if this process dies
// before Done, the timer fires again elsewhere, so handlers are idempotent.
func (p *Pipeline) timerLoop(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		timers, err := p.o.Store.ClaimDue(ctx, p.now(), 100, 30*time.Second)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("claiming timers failed", "err", err)
			}
			continue
		}
		for _, tm := range timers {
			var pl timerPayload
			if err := json.Unmarshal(tm.Payload, &pl); err != nil {
				_ = p.o.Store.Done(ctx, tm.ID, tm.Claim)
				continue
			}
			h, ok := p.timerHandlers[pl.Kind]
			if !ok {
				p.log.Warn("no handler for timer", "kind", pl.Kind, "id", tm.ID)
				continue
			}
			if err := h(ctx, pl.Data); err != nil {
				p.log.Warn("timer handler failed; it will fire again", "id", tm.ID, "err", err)
				continue
			}
			if err := p.o.Store.Done(ctx, tm.ID, tm.Claim); err != nil && !errors.Is(err, store.ErrConflict) {
				p.log.Warn("timer done failed", "id", tm.ID, "err", err)
			}
			p.m.TimersFired.WithLabelValues(pl.Kind).Inc()
		}
	}
}
