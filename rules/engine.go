package rules

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Engine holds the running rule set of a directory and swaps in a new one
// only once it has loaded and compiled completely: a broken edit is refused
// with its problems and the running set keeps serving.
type Engine struct {
	dir string
	cur atomic.Pointer[Ruleset]
	mu  sync.Mutex // one reload at a time
	// seen is the content last loaded (the running version, or the files a
	// refused reload read), so that a refused edit is not retried until the
	// files change again.
	seen string
}

// NewEngine loads dir. It fails when the rules do not load: there is nothing
// to serve yet.
func NewEngine(dir string) (*Engine, error) {
	rs, err := LoadDir(dir)
	if err != nil {
		return nil, err
	}
	e := &Engine{dir: dir, seen: rs.version}
	e.cur.Store(rs)
	return e, nil
}

// Dir is the rules directory.
func (e *Engine) Dir() string { return e.dir }

// Current returns the running rule set. Hold on to it for the whole of one
// message so that every decision about the message comes from one version.
func (e *Engine) Current() *Ruleset { return e.cur.Load() }

// Evaluate evaluates in with the running rule set.
func (e *Engine) Evaluate(in Input) (*Decision, error) { return e.Current().Evaluate(in) }

// Reload loads the directory again. A set that loads replaces the running
// one (when its version differs); one that does not is refused, its error
// (a *LoadError) returned, and the running set stays. The set returned is
// the one running after the call.
func (e *Engine) Reload() (*Ruleset, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	before := e.fingerprint()
	rs, err := LoadDir(e.dir)
	if err != nil {
		e.seen = before
		return e.cur.Load(), err
	}
	e.seen = rs.version
	if old := e.cur.Load(); old != nil && old.version == rs.version {
		return old, nil
	}
	e.cur.Store(rs)
	return rs, nil
}

// ReloadResult reports a reload that Watch made after the files changed.
type ReloadResult struct {
	Previous string // version running before
	Version  string // version running after (Previous when refused)
	Changed  bool   // a new version is running
	Err      error  // why the new files were refused (a *LoadError)
}

// Watch polls the directory every interval (by content, so it needs no
// file-system notifications and sees edits on any file system) and reloads
// when the files differ from what was last loaded, reporting each reload to
// onReload (which may be nil). An edit made before Watch starts is seen too.
// It returns when ctx is done.
func (e *Engine) Watch(ctx context.Context, interval time.Duration, onReload func(ReloadResult)) error {
	if interval <= 0 {
		return errors.New("rules: watch interval must be positive")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		e.mu.Lock()
		changed := e.fingerprint() != e.seen
		e.mu.Unlock()
		if !changed {
			continue
		}
		prev := e.Current().Version()
		rs, err := e.Reload()
		if onReload != nil {
			onReload(ReloadResult{Previous: prev, Version: rs.Version(), Changed: rs.Version() != prev, Err: err})
		}
	}
}

// fingerprint hashes the files on disk the way a load would: the rule files,
// then the files the running set refers to (an edit that adds a reference
// changes a rule file anyway). It equals the running version while nothing
// has changed.
func (e *Engine) fingerprint() string {
	h := newContentHash()
	names, err := RuleFiles(e.dir)
	if err != nil {
		h.add("", nil, err)
	}
	if rs := e.Current(); rs != nil {
		names = append(names, rs.rels[rs.ruleFiles:]...)
	}
	for _, rel := range names {
		data, err := os.ReadFile(filepath.Join(e.dir, filepath.FromSlash(rel)))
		h.add(rel, data, err)
	}
	return h.sum()
}
