package assign_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
)

// proc is one assignproc process: an Assigner with its own Redis client.
type proc struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	mu  sync.Mutex
}

type procAnswer struct {
	Assignment *assign.Assignment `json:"assignment"`
	Holds      []hold             `json:"holds"`
	Error      string             `json:"error"`
}

type hold struct {
	Conv   string `json:"conv"`
	Agent  string `json:"agent"`
	From   int64  `json:"from"`
	To     int64  `json:"to"`
	Queued bool   `json:"queued"`
}

func startProc(t *testing.T, bin, prefix, replica string) *proc {
	t.Helper()
	dir, _ := filepath.Abs("testdata/rules")
	cmd := exec.Command(bin, "-redis", redisURL(), "-prefix", prefix, "-rules", dir, "-replica", replica)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	var stderr syncBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if s := stderr.String(); s != "" {
			t.Logf("%s stderr: %s", replica, s)
		}
	})
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	return &proc{t: t, cmd: cmd, in: in, out: sc}
}

type syncBuf struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return string(s.b) }

func (p *proc) call(cmd map[string]any) procAnswer {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, _ := json.Marshal(cmd)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		p.t.Fatalf("write to assignproc: %v", err)
	}
	if !p.out.Scan() {
		p.t.Fatalf("assignproc ended: %v", p.out.Err())
	}
	var a procAnswer
	if err := json.Unmarshal(p.out.Bytes(), &a); err != nil {
		p.t.Fatalf("assignproc answer %q: %v", p.out.Text(), err)
	}
	return a
}

// TestThreeProcessesRace runs three processes, each with its own Redis
// client and Assigner, assigning concurrently to the capacity team (7
// slots: 2, 2 and 3) from 6 workers each. Every hold interval is measured
// on a counter shared through Redis; at no point does any agent hold more
// conversations than its capacity, and a watcher reading the shared state
// never sees an agent above capacity either. Then: with every slot taken,
// a conversation waits, and it is assigned by the close in another
// process, before that close returns.
func TestThreeProcessesRace(t *testing.T) {
	requireRedis(t)
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/hub/assign/internal/assignproc")
	prefix := redisPrefix(t)
	procs := []*proc{startProc(t, bin, prefix, "p1"), startProc(t, bin, prefix, "p2"), startProc(t, bin, prefix, "p3")}
	ctx := context.Background()
	watch := newAssigner(t, openRedis(t, prefix), assign.Options{})
	caps := map[string]int{"c1": 2, "c2": 2, "c3": 3}

	stop := make(chan struct{})
	watchErr := make(chan string, 1)
	var polls int
	go func() {
		for {
			select {
			case <-stop:
				close(watchErr)
				return
			default:
			}
			states, err := watch.Agents(ctx)
			if err != nil {
				continue
			}
			polls++
			for _, s := range states {
				if c, ok := caps[s.ID]; ok && s.Load > c {
					watchErr <- fmt.Sprintf("watcher saw %s with %d open (capacity %d): %v", s.ID, s.Load, c, s.Open)
					return
				}
			}
		}
	}()

	const perProc = 300
	var wg sync.WaitGroup
	results := make([]procAnswer, len(procs))
	for i, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = p.call(map[string]any{"op": "work", "team": "cap", "n": perProc, "workers": 6, "prefix": fmt.Sprintf("p%d-", i+1), "hold_ms": 30})
		}()
	}
	wg.Wait()
	close(stop)
	if msg, ok := <-watchErr; ok {
		t.Fatal(msg)
	}
	var holds []hold
	queued := 0
	for i, r := range results {
		if r.Error != "" {
			t.Fatalf("process %d: %s", i+1, r.Error)
		}
		for _, h := range r.Holds {
			if h.Queued {
				queued++
			}
		}
		holds = append(holds, r.Holds...)
	}
	if len(holds) != 3*perProc {
		t.Fatalf("%d holds, want %d", len(holds), 3*perProc)
	}
	// Sweep each agent's intervals: the most held at once.
	type ev struct {
		at    int64
		delta int
	}
	per := map[string][]ev{}
	for _, h := range holds {
		if _, ok := caps[h.Agent]; !ok {
			t.Fatalf("%s went to %q, not a member of the team", h.Conv, h.Agent)
		}
		per[h.Agent] = append(per[h.Agent], ev{h.From, +1}, ev{h.To, -1})
	}
	for agent, evs := range per {
		sort.Slice(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
		cur, peak := 0, 0
		for _, e := range evs {
			cur += e.delta
			peak = max(peak, cur)
		}
		if peak > caps[agent] {
			t.Errorf("%s held %d conversations at once, capacity %d", agent, peak, caps[agent])
		}
		t.Logf("%s: %d conversations, at most %d at once (capacity %d)", agent, len(evs)/2, peak, caps[agent])
	}
	t.Logf("%d of %d conversations waited in the queue; the watcher read the shared state %d times", queued, len(holds), polls)
	if queued == 0 {
		t.Errorf("no conversation ever waited: the test did not exercise the queue")
	}
	for _, s := range must[[]assign.AgentState](t)(watch.Agents(ctx)) {
		if s.Load != 0 {
			t.Errorf("%s still has %v open after every conversation closed", s.ID, s.Open)
		}
	}

	// All seven slots taken through p1; a conversation from p2 waits; p3
	// closes one of p1's: the waiting one is assigned before p3's close
	// returns.
	for i := 0; i < 7; i++ {
		if a := procs[0].call(map[string]any{"op": "submit", "conv": fmt.Sprintf("full-%d", i), "team": "cap"}); a.Error != "" || a.Assignment.Agent == "" {
			t.Fatalf("full-%d: %+v", i, a)
		}
	}
	if a := procs[1].call(map[string]any{"op": "submit", "conv": "waiter", "team": "cap"}); a.Error != "" || !a.Assignment.Queued {
		t.Fatalf("waiter: %+v", a)
	}
	full := must[*assign.Record](t)(watch.Record(ctx, "full-3"))
	if a := procs[2].call(map[string]any{"op": "close", "conv": "full-3"}); a.Error != "" {
		t.Fatal(a.Error)
	}
	r := must[*assign.Record](t)(watch.Record(ctx, "waiter"))
	if r.State != assign.RecAssigned || r.Assignee != full.Assignee {
		t.Fatalf("after the close in another process the waiter is %+v (the freed slot was %s's)", r, full.Assignee)
	}
}
