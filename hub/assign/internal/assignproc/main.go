// Command assignproc runs one Assigner on its own Redis connection, for
// the race tests: several of these processes assign to one team at once.
// It reads JSON commands from stdin, one a line, and answers each with
// one JSON line on stdout:
//
//	{"op":"submit","conv":"x","team":"cap"}   → {"assignment":{...}}
//	{"op":"close","conv":"x"}                  → {}
//	{"op":"work","team":"cap","n":200,"workers":6,"prefix":"p1-","hold_ms":20}
//	                                           → {"holds":[{conv,agent,from,to}...]}
//
// work assigns n conversations from concurrent workers; each holds its
// slot a moment and closes it. A conversation that has to wait is picked
// up by a drain (another worker's close, in any process). from and to
// come from a counter in the Store shared by every process: from is
// taken after the assignment is committed, to before the close starts,
// so [from, to] lies inside the time the slot was held, and the test can
// check that no agent ever held more than its capacity at once.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/store/redisstore"
	"github.com/switchboard-hub/switchboard/rules"
)

type command struct {
	Op      string `json:"op"`
	Conv    string `json:"conv"`
	Team    string `json:"team"`
	N       int    `json:"n"`
	Workers int    `json:"workers"`
	Prefix  string `json:"prefix"`
	HoldMS  int    `json:"hold_ms"` // most a worker holds a slot (default 3)
}

// Hold is one conversation's time with an agent, in shared counter ticks.
type Hold struct {
	Conv   string `json:"conv"`
	Agent  string `json:"agent"`
	From   int64  `json:"from"`
	To     int64  `json:"to"`
	Queued bool   `json:"queued"`
}

type answer struct {
	Assignment *assign.Assignment `json:"assignment,omitempty"`
	Holds      []Hold             `json:"holds,omitempty"`
	Error      string             `json:"error,omitempty"`
}

func main() {
	url := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL")
	prefix := flag.String("prefix", "", "key prefix")
	dir := flag.String("rules", "", "rules directory")
	replica := flag.String("replica", "", "replica id")
	flag.Parse()
	ctx := context.Background()
	st, err := redisstore.Open(ctx, redisstore.Options{URL: *url, Prefix: *prefix, Partitions: 4})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer st.Close()
	eng, err := rules.NewEngine(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// A tick of an hour: any waiting conversation that gets assigned was
	// assigned by a drain when a slot freed, not by the periodic one.
	a, err := assign.New(assign.Options{Store: st, Rules: eng.Current, Replica: *replica, Tick: time.Hour})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			_ = out.Encode(answer{Error: err.Error()})
			continue
		}
		var ans answer
		switch c.Op {
		case "submit":
			ans.Assignment, err = a.Submit(ctx, assign.Request{Conv: c.Conv, Team: c.Team})
		case "close":
			err = a.Close(ctx, c.Conv, "test")
		case "work":
			ans.Holds, err = work(ctx, a, st, c)
		case "quit":
			return
		default:
			err = fmt.Errorf("unknown op %q", c.Op)
		}
		if err != nil {
			ans.Error = err.Error()
		}
		_ = out.Encode(ans)
	}
}

func work(ctx context.Context, a *assign.Assigner, st *redisstore.Store, c command) ([]Hold, error) {
	var (
		mu    sync.Mutex
		holds []Hold
		first error
		next  int
		wg    sync.WaitGroup
	)
	tick := func() (int64, error) { return st.Incr(ctx, "assigntest:seq", 1, 0) }
	for w := 0; w < c.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= c.N || first != nil
				mu.Unlock()
				if stop {
					return
				}
				h, err := one(ctx, a, tick, c.Team, fmt.Sprintf("%s%d", c.Prefix, i), max(c.HoldMS, 1))
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				holds = append(holds, h)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return holds, first
}

func one(ctx context.Context, a *assign.Assigner, tick func() (int64, error), team, conv string, holdMS int) (Hold, error) {
	h := Hold{Conv: conv}
	res, err := a.Submit(ctx, assign.Request{Conv: conv, Team: team})
	if err != nil {
		return h, err
	}
	if res.Queued {
		h.Queued = true
		// Wait for a drain to assign it (a close anywhere drains).
		deadline := time.Now().Add(30 * time.Second)
		for {
			r, err := a.Record(ctx, conv)
			if err != nil {
				return h, err
			}
			if r.State == assign.RecAssigned {
				res = &assign.Assignment{Agent: r.Assignee}
				break
			}
			if time.Now().After(deadline) {
				return h, fmt.Errorf("%s waited 30s in the queue", conv)
			}
			time.Sleep(time.Millisecond)
		}
	}
	h.Agent = res.Agent
	if h.From, err = tick(); err != nil {
		return h, err
	}
	time.Sleep(time.Duration(rand.IntN(holdMS*1000)) * time.Microsecond)
	if h.To, err = tick(); err != nil {
		return h, err
	}
	return h, a.Close(ctx, conv, "done")
}
