package main

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// request is one pre-built, pre-signed webhook delivery.
type request struct {
	path   string
	header [][2]string
	body   []byte
	token  int // the message's number, echoed in its reply; -1: none
}

// loadResult is what one load run measured at the client.
type loadResult struct {
	Sent     int
	OK       int // 2xx
	Refused  int // 4xx
	Errors   int // 5xx and transport errors
	Elapsed  time.Duration
	Latency  []time.Duration // of the answered requests, any status
	SentAt   []time.Time     // per request index: when it was due (open loop) or sent (closed loop)
	Statuses map[int]int
}

func (r *loadResult) perSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

type percentiles struct{ P50, P99, Max time.Duration }

func pct(lat []time.Duration) percentiles {
	if len(lat) == 0 {
		return percentiles{}
	}
	s := append([]time.Duration(nil), lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.5) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return percentiles{P50: at(0.50), P99: at(0.99), Max: s[len(s)-1]}
}

// loader sends pre-built requests over keep-alive connections with
// fasthttp's client, the cheapest Go client there is, so the load
// generator takes as little of the shared CPU as possible.
type loader struct {
	addr string
	hc   *fasthttp.HostClient
}

func newLoader(addr string, conns int) *loader {
	return &loader{addr: addr, hc: &fasthttp.HostClient{Addr: addr, MaxConns: conns,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, MaxIdleConnDuration: time.Minute,
		MaxConnWaitTimeout: 30 * time.Second}}
}

func (l *loader) do(r *request) (int, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + l.addr + r.path)
	req.Header.SetMethod(fasthttp.MethodPost)
	for _, h := range r.header {
		req.Header.Set(h[0], h[1])
	}
	req.SetBodyRaw(r.body)
	if err := l.hc.Do(req, resp); err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

type counter struct {
	mu       sync.Mutex
	statuses map[int]int
}

func (c *counter) add(code int) {
	c.mu.Lock()
	c.statuses[code]++
	c.mu.Unlock()
}

// closedLoop keeps conns requests in flight until every request was sent
// or limit passed: the maximum the server sustains.
func (l *loader) closedLoop(ctx context.Context, reqs []request, conns int, limit time.Duration) *loadResult {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	res := &loadResult{SentAt: make([]time.Time, len(reqs))}
	lat := make([]time.Duration, len(reqs))
	done := make([]bool, len(reqs))
	var next atomic.Int64
	var ok, refused, errs atomic.Int64
	c := &counter{statuses: map[int]int{}}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) {
					return
				}
				t0 := time.Now()
				res.SentAt[i] = t0
				code, err := l.do(&reqs[i])
				lat[i] = time.Since(t0)
				done[i] = true
				classify(code, err, &ok, &refused, &errs, c)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.finish(lat, done, &ok, &refused, &errs, c)
	return res
}

// openLoop sends requests at a fixed rate whatever the answers, the way
// providers deliver; latency counts from when a request was due, so a
// stalled server is not flattered (no coordinated omission).
func (l *loader) openLoop(ctx context.Context, reqs []request, rate float64, limit time.Duration) *loadResult {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	res := &loadResult{SentAt: make([]time.Time, len(reqs))}
	lat := make([]time.Duration, len(reqs))
	done := make([]bool, len(reqs))
	var ok, refused, errs atomic.Int64
	c := &counter{statuses: map[int]int{}}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	sent := 0
	for i := range reqs {
		due := start.Add(time.Duration(i) * interval)
		// Sleep only when more than a millisecond ahead: timers are not
		// finer than that, and a request sent a little early is measured
		// from when it was actually sent.
		if d := time.Until(due); d > time.Millisecond {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		res.SentAt[i] = due
		sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := due
			if now := time.Now(); now.Before(due) {
				from = now
			}
			code, err := l.do(&reqs[i])
			lat[i] = time.Since(from)
			done[i] = true
			classify(code, err, &ok, &refused, &errs, c)
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.finish(lat, done, &ok, &refused, &errs, c)
	return res
}

func classify(code int, err error, ok, refused, errs *atomic.Int64, c *counter) {
	switch {
	case err != nil:
		errs.Add(1)
		c.add(0)
		return
	case code >= 200 && code < 300:
		ok.Add(1)
	case code >= 400 && code < 500:
		refused.Add(1)
	default:
		errs.Add(1)
	}
	c.add(code)
}

func (res *loadResult) finish(lat []time.Duration, done []bool, ok, refused, errs *atomic.Int64, c *counter) {
	for i, d := range done {
		if d {
			res.Sent++
			res.Latency = append(res.Latency, lat[i])
		}
	}
	res.OK, res.Refused, res.Errors = int(ok.Load()), int(refused.Load()), int(errs.Load())
	res.Statuses = c.statuses
}
