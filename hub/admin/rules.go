package admin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/rules"
)

// ruleFile is one file of a rule set.
type ruleFile struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

type rulesView struct {
	Version string     `json:"version"`
	Dir     string     `json:"dir"`
	Files   []ruleFile `json:"files"`
	// Note: files are read from disk when asked; an edit not yet reloaded
	// shows here before it runs (the version is what runs).
}

func (api *API) engine() (*rules.Engine, error) {
	if api.app.Rules == nil {
		return nil, errProblem(http.StatusConflict, PNotConfigured, "The hub runs without rules (rules.dir is not set).")
	}
	return api.app.Rules, nil
}

func (api *API) getRules(c *fiber.Ctx) error {
	eng, err := api.engine()
	if err != nil {
		return err
	}
	rs := eng.Current()
	v := rulesView{Version: rs.Version(), Dir: rs.Dir(), Files: []ruleFile{}}
	for _, f := range rs.Files() {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read rule file: %w", err)
		}
		v.Files = append(v.Files, ruleFile{Name: relTo(rs.Dir(), f), Content: string(b)})
	}
	return c.JSON(v)
}

func relTo(dir, path string) string {
	if r, err := filepath.Rel(dir, path); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return path
}

// candidateFiles is a rule set sent in a request: file name → content.
type candidateFiles map[string]string

var safeFileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

const maxCandidateFiles = 200

// load writes the files to a fresh directory and loads them as a rule set.
// Problems name the files as they were sent.
func (cf candidateFiles) load(field string) (*rules.Ruleset, error) {
	if len(cf) == 0 {
		return nil, invalid(field, "at least one rule file is required, as {\"name.yaml\": \"content\"}")
	}
	if len(cf) > maxCandidateFiles {
		return nil, invalid(field, "at most %d files", maxCandidateFiles)
	}
	dir, err := os.MkdirTemp("", "sb-rules-*")
	if err != nil {
		return nil, fmt.Errorf("candidate rules: %w", err)
	}
	defer os.RemoveAll(dir)
	for name, content := range cf {
		if !safeFileName.MatchString(name) || strings.Contains(name, "..") {
			return nil, invalid(field+"."+name, "a file name is a plain name such as 20-scoring.yaml (no directories)")
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, fmt.Errorf("candidate rules: %w", err)
		}
	}
	rs, err := rules.LoadDir(dir)
	if err != nil {
		return nil, rulesProblem(err, dir, "The candidate rule set does not load")
	}
	return rs, nil
}

// rulesProblem turns a load failure into a rules-invalid problem listing
// file:line:col for each problem, with paths relative to dir.
func rulesProblem(err error, dir, what string) error {
	var le *rules.LoadError
	if !errors.As(err, &le) {
		return &apiError{status: http.StatusUnprocessableEntity, typ: PRulesInvalid, detail: what + ": " + err.Error(),
			extra: []rules.Problem{{File: relTo(dir, dir), Line: 1, Col: 1, Msg: err.Error()}}}
	}
	ps := make([]rules.Problem, len(le.Problems))
	lines := make([]string, len(le.Problems))
	for i, p := range le.Problems {
		p.File = relTo(dir, p.File)
		ps[i] = p
		lines[i] = p.String()
	}
	return &apiError{status: http.StatusUnprocessableEntity, typ: PRulesInvalid,
		detail: fmt.Sprintf("%s: %d problem(s):\n%s", what, len(ps), strings.Join(lines, "\n")), extra: ps}
}

type validateRequest struct {
	Files candidateFiles `json:"files"`
}

type validateResponse struct {
	Valid   bool     `json:"valid"`
	Version string   `json:"version"`
	Files   []string `json:"files"`
	Rules   int      `json:"rules"`
	Teams   []string `json:"teams"`
}

func (api *API) validateRules(c *fiber.Ctx) error {
	var req validateRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	rs, err := req.Files.load("files")
	if err != nil {
		return err
	}
	v := validateResponse{Valid: true, Version: rs.Version(), Files: []string{}, Rules: len(rs.Rules()), Teams: []string{}}
	for _, f := range rs.Files() {
		v.Files = append(v.Files, filepath.Base(f))
	}
	for name := range rs.Teams() {
		v.Teams = append(v.Teams, name)
	}
	slices.Sort(v.Teams)
	return c.JSON(v)
}

func (api *API) reloadRules(c *fiber.Ctx) error {
	eng, err := api.engine()
	if err != nil {
		return err
	}
	prev := eng.Current().Version()
	rs, err := eng.Reload()
	if err != nil {
		noteAudit(c, "rules", "refused; "+prev+" keeps running")
		api.log.Warn("rules reload refused through the admin API; the running rules stay", "version", prev, "err", err)
		return rulesProblem(err, eng.Dir(), "Reload refused; version "+prev+" keeps running")
	}
	noteAudit(c, "rules", prev+" -> "+rs.Version())
	if rs.Version() != prev {
		api.log.Info("rules reloaded through the admin API", "previous", prev, "version", rs.Version())
	}
	return c.JSON(fiber.Map{"version": rs.Version(), "previous": prev, "changed": rs.Version() != prev})
}

// ---------------------------------------------------------------- dry run

type dryRunRequest struct {
	Input rules.Input `json:"input"`
	// Files, when given, is a candidate set to evaluate instead of the
	// running one.
	Files candidateFiles `json:"files,omitempty"`
}

type dryRunResponse struct {
	Version   string            `json:"version"`
	Candidate bool              `json:"candidate"`
	Decision  *rules.Decision   `json:"decision"`
	Explain   string            `json:"explain"`
	Trace     []rules.Verdict   `json:"trace"`
	Errors    []rules.RuleError `json:"errors,omitempty"`
}

func (api *API) ruleset(files candidateFiles) (*rules.Ruleset, bool, error) {
	if files != nil {
		rs, err := files.load("files")
		return rs, true, err
	}
	eng, err := api.engine()
	if err != nil {
		return nil, false, err
	}
	return eng.Current(), false, nil
}

func (api *API) dryRun(c *fiber.Ctx) error {
	var req dryRunRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	rs, cand, err := api.ruleset(req.Files)
	if err != nil {
		return err
	}
	if req.Input.Now.IsZero() {
		req.Input.Now = api.now()
	}
	d, trace, err := rs.Trace(req.Input)
	var ee *rules.EvalError
	if err != nil && (!errors.As(err, &ee) || d == nil) {
		return invalid("input", "the rules could not evaluate it: %v", err)
	}
	if trace == nil {
		trace = []rules.Verdict{}
	}
	return c.JSON(dryRunResponse{Version: rs.Version(), Candidate: cand, Decision: d, Explain: d.Explain(), Trace: trace, Errors: d.Errors})
}

// ---------------------------------------------------------------- what-if

type whatIfRequest struct {
	Files candidateFiles `json:"files"`
	// Last is how many of the most recent conversations to replay (100).
	Last int `json:"last,omitempty"`
	// From and To select conversations by the time of their last decision.
	From *time.Time `json:"from,omitempty"`
	To   *time.Time `json:"to,omitempty"`
}

// outcome is the part of a decision a rule change is judged on.
type outcome struct {
	Score       int    `json:"score"`
	Tier        string `json:"tier,omitempty"`
	Team        string `json:"team,omitempty"`
	Handoff     bool   `json:"handoff"`
	HandoffRule string `json:"handoff_rule,omitempty"`
}

func outcomeOf(d *rules.Decision) outcome {
	o := outcome{Score: d.Score, Tier: d.Tier, Team: d.Team}
	if d.Handoff != nil {
		o.Handoff, o.HandoffRule = true, d.Handoff.Rule
	}
	return o
}

func (o outcome) diff(n outcome) []string {
	var f []string
	if o.Score != n.Score {
		f = append(f, "score")
	}
	if o.Tier != n.Tier {
		f = append(f, "tier")
	}
	if o.Team != n.Team {
		f = append(f, "team")
	}
	if o.Handoff != n.Handoff || o.HandoffRule != n.HandoffRule {
		f = append(f, "handoff")
	}
	return f
}

type whatIfChange struct {
	Conv    string    `json:"conv"`
	At      time.Time `json:"at"` // the decision replayed
	Fields  []string  `json:"fields"`
	Before  outcome   `json:"before"`
	After   outcome   `json:"after"`
	Explain string    `json:"explain"` // the candidate's explanation
}

type whatIfResponse struct {
	ActiveVersion    string         `json:"active_version"`
	CandidateVersion string         `json:"candidate_version"`
	Evaluated        int            `json:"evaluated"`
	Changed          int            `json:"changed"`
	ByField          map[string]int `json:"by_field"`
	Changes          []whatIfChange `json:"changes"`
	// Truncated: more conversations are stored than one what-if scans.
	Truncated bool `json:"truncated,omitempty"`
}

const (
	defaultWhatIf = 100
	maxWhatIf     = 5000
	whatIfScanCap = 50000
)

// whatIf replays the recorded facts of recent conversations against the
// running set and a candidate, and lists the decisions that would change.
// Each conversation is evaluated as at its last bot decision: the time of
// that decision, the history up to it, and the bot state it was made in.
func (api *API) whatIf(c *fiber.Ctx) error {
	var req whatIfRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	switch {
	case req.Last < 0 || req.Last > maxWhatIf:
		return invalid("last", "must be from 1 to %d", maxWhatIf)
	case req.From != nil && req.To != nil && req.To.Before(*req.From):
		return invalid("to", "is before from")
	}
	if req.Last == 0 {
		req.Last = defaultWhatIf
	}
	if req.Files == nil {
		return invalid("files", "the candidate rule set is required, as {\"name.yaml\": \"content\"}")
	}
	cand, err := req.Files.load("files")
	if err != nil {
		return err
	}
	eng, err := api.engine()
	if err != nil {
		return err
	}
	active := eng.Current()
	ctx := c.UserContext()

	// The most recent decisions first; the KV lists by key, so scan and pick.
	var picked []*pipeline.Conversation
	cursor, scanned, truncated := "", 0, false
	for {
		items, next, err := api.st.List(ctx, pipeline.NSConversations, "", cursor, 500)
		if err != nil {
			return err
		}
		for _, it := range items {
			var cv pipeline.Conversation
			if json.Unmarshal(it.Value, &cv) != nil || cv.LastDecision == nil {
				continue
			}
			at := cv.LastDecision.Now
			if (req.From != nil && at.Before(*req.From)) || (req.To != nil && at.After(*req.To)) {
				continue
			}
			picked = append(picked, &cv)
		}
		scanned += len(items)
		if next == "" {
			break
		}
		if scanned >= whatIfScanCap {
			truncated = true
			break
		}
		cursor = next
	}
	slices.SortFunc(picked, func(a, b *pipeline.Conversation) int {
		return cmp.Or(b.LastDecision.Now.Compare(a.LastDecision.Now), strings.Compare(a.ID, b.ID))
	})
	if len(picked) > req.Last {
		picked = picked[:req.Last]
	}
	resp := whatIfResponse{ActiveVersion: active.Version(), CandidateVersion: cand.Version(), ByField: map[string]int{}, Changes: []whatIfChange{}, Truncated: truncated}
	for _, cv := range picked {
		hist, err := api.app.Pipeline.History(ctx, cv.ID)
		if err != nil {
			return err
		}
		in := replayInput(cv, hist)
		before, _ := active.Evaluate(in)
		after, _ := cand.Evaluate(in)
		if before == nil || after == nil {
			continue
		}
		resp.Evaluated++
		bo, ao := outcomeOf(before), outcomeOf(after)
		if f := bo.diff(ao); len(f) > 0 {
			resp.Changed++
			for _, name := range f {
				resp.ByField[name]++
			}
			resp.Changes = append(resp.Changes, whatIfChange{Conv: cv.ID, At: in.Now, Fields: f, Before: bo, After: ao, Explain: after.Explain()})
		}
	}
	return c.JSON(resp)
}

// replayInput rebuilds the rules' input of a conversation's last decision.
func replayInput(cv *pipeline.Conversation, hist []pipeline.Turn) rules.Input {
	at := cv.LastDecision.Now
	upTo := hist[:0:0]
	for _, t := range hist {
		if !t.At.After(at) {
			upTo = append(upTo, t)
		}
	}
	in := pipeline.RulesInput(cv, upTo, at)
	// The bot decides only while it has the conversation; later handoffs
	// must not hide the handoff rules from the replay.
	in.Conversation.State = rules.StateBot
	return in
}
