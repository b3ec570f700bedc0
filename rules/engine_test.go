package rules

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// copyDir copies the default rule set to a temporary directory the test may
// edit.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		write(t, dir, e.Name(), string(data))
	}
	return dir
}

const brokenScoring = `
scoring:
  rules:
    - name: typo
      when: lead.budgt != ""
      add: 5
`

func TestEngineReload(t *testing.T) {
	dir := copyDir(t, "../examples/rules")
	e, err := NewEngine(dir)
	if err != nil {
		t.Fatal(err)
	}
	v1 := e.Current().Version()
	if rs, err := e.Reload(); err != nil || rs.Version() != v1 || rs != e.Current() {
		t.Fatalf("reload of unchanged files: %v, %v", rs, err)
	}
	// A broken file is refused; the running set stays.
	write(t, dir, "60-broken.yaml", brokenScoring)
	rs, err := e.Reload()
	var le *LoadError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "60-broken.yaml:5:18") {
		t.Fatalf("broken reload: %v", err)
	}
	if rs.Version() != v1 || e.Current().Version() != v1 {
		t.Fatal("a broken set replaced the running one")
	}
	// A good change is swapped in.
	write(t, dir, "60-broken.yaml", strings.ReplaceAll(brokenScoring, "budgt", "budget"))
	rs, err = e.Reload()
	if err != nil || rs.Version() == v1 || e.Current() != rs {
		t.Fatalf("good reload: %v, version %s", err, rs.Version())
	}
	if _, err := NewEngine(t.TempDir()); err == nil {
		t.Error("NewEngine of an empty directory must fail")
	}
}

// TestReloadBrokenWhileEvaluating evaluates messages on several goroutines
// while a broken rule set is reloaded again and again: every evaluation
// succeeds with the old version (run with -race).
func TestReloadBrokenWhileEvaluating(t *testing.T) {
	dir := copyDir(t, "../examples/rules")
	e, err := NewEngine(dir)
	if err != nil {
		t.Fatal(err)
	}
	good := e.Current().Version()
	in := Input{Now: monday9, Message: Message{Text: "Cho em xin báo giá, gặp nhân viên"},
		Lead: Lead{DecisionMaker: true, Need: "CRM", Timeline: "tuần này", Budget: "50 triệu"}}
	want, _ := e.Evaluate(in)

	var stop atomic.Bool
	var evaluated atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				rs := e.Current()
				d, err := rs.Evaluate(in)
				switch {
				case err != nil:
					errs <- err
					return
				case rs.Version() != good || d.Version != good:
					errs <- errors.New("evaluated with version " + d.Version)
					return
				case d.Score != want.Score || d.Team != want.Team || d.Handoff == nil || d.Handoff.Rule != want.Handoff.Rule:
					errs <- errors.New("decision changed: " + d.Explain())
					return
				}
				evaluated.Add(1)
			}
		}()
	}
	write(t, dir, "60-broken.yaml", brokenScoring)
	for i := 0; i < 20; i++ {
		if _, err := e.Reload(); err == nil {
			t.Fatal("broken set accepted")
		}
	}
	// Let the evaluators run until they have done real work, with a deadline
	// rather than a sleep.
	deadline := time.Now().Add(10 * time.Second)
	for evaluated.Load() < 200 && time.Now().Before(deadline) {
		if _, err := e.Reload(); err == nil {
			t.Fatal("broken set accepted")
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if evaluated.Load() < 200 {
		t.Fatalf("only %d evaluations", evaluated.Load())
	}
	if e.Current().Version() != good {
		t.Error("the running set changed")
	}
}

func TestWatch(t *testing.T) {
	dir := copyDir(t, "../examples/rules")
	e, err := NewEngine(dir)
	if err != nil {
		t.Fatal(err)
	}
	v1 := e.Current().Version()
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan ReloadResult, 10)
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx, 5*time.Millisecond, func(r ReloadResult) { results <- r }) }()
	next := func() ReloadResult {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no reload reported")
		}
		return ReloadResult{}
	}

	write(t, dir, "60-broken.yaml", brokenScoring)
	if r := next(); r.Err == nil || r.Changed || r.Version != v1 || r.Previous != v1 {
		t.Fatalf("broken edit: %+v", r)
	}
	write(t, dir, "60-broken.yaml", strings.ReplaceAll(brokenScoring, "budgt", "budget"))
	r := next()
	if r.Err != nil || !r.Changed || r.Previous != v1 || r.Version == v1 || e.Current().Version() != r.Version {
		t.Fatalf("fixed edit: %+v", r)
	}
	// A referenced file (the holiday list) is watched too.
	f, _ := os.OpenFile(filepath.Join(dir, "holidays-vn.txt"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("2027-01-01\n")
	f.Close()
	if r2 := next(); !r2.Changed || r2.Previous != r.Version {
		t.Fatalf("holiday edit: %+v", r2)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v", err)
	}
	if err := e.Watch(context.Background(), 0, nil); err == nil {
		t.Error("zero interval accepted")
	}
}
