package rules

import "time"

// Env is the environment every expression is compiled against and evaluated
// in. Because it is a Go struct, a misspelt field is a load error, not a
// silent nil at run time.
//
// Score, Tier, Team and Priority are filled in as evaluation proceeds:
// scoring rules cannot read score or tier (they compute them), tiers can read
// score, routing can read score and tier, and handoff, release and follow-up
// rules can read all four.
type Env struct {
	Message      Message      `expr:"message"`
	Contact      Contact      `expr:"contact"`
	Lead         Lead         `expr:"lead"`
	Conversation Conversation `expr:"conversation"`

	// Shortcuts.
	Text   string `expr:"text"`   // message.text
	Intent string `expr:"intent"` // lead.intent
	Action string `expr:"action"` // lead.action

	Score    int       `expr:"score"`    // this evaluation's score, 0..100
	Tier     string    `expr:"tier"`     // the tier that score falls in
	Team     string    `expr:"team"`     // the routed team
	Priority string    `expr:"priority"` // the routed priority
	Now      time.Time `expr:"now"`      // the evaluation time; now() is the same

	// Computed once per evaluation, for the rewritten forms of fold(f),
	// containsAny, containsWord, containsWordExact and isBlank (see
	// slots.go): not part of the documented language.
	F [fieldSlots]string `expr:"__f"` // fold(field)
	M [matchSlots]bool   `expr:"__m"` // a constant phrase list matched against a field

	// C holds the values of the conditions that do not depend on score,
	// tier, team or priority, computed once per evaluation however many
	// rules use them.
	C [condSlots]bool `expr:"__c"`
}

const (
	fieldSlots = 8
	matchSlots = 64
	condSlots  = 32
)

// AgentEnv is the environment of a team's eligible condition: everything in
// Env plus the agent being considered.
type AgentEnv struct {
	Env
	Agent Agent `expr:"agent"`
}

// stringFields lists the string fields that fold slots can precompute, by
// every name an expression can reach them with; the value is the canonical
// name and the getter.
var stringFields = map[string]stringField{}

type stringField struct {
	canonical string
	get       func(*Env) string
}

func init() {
	def := func(get func(*Env) string, names ...string) {
		for _, n := range names {
			stringFields[n] = stringField{canonical: names[0], get: get}
		}
	}
	def(func(e *Env) string { return e.Message.Text }, "message.text", "text")
	def(func(e *Env) string { return e.Message.Channel }, "message.channel")
	def(func(e *Env) string { return e.Message.Type }, "message.type")
	def(func(e *Env) string { return e.Message.Author }, "message.author")
	def(func(e *Env) string { return e.Contact.Name }, "contact.name")
	def(func(e *Env) string { return e.Contact.Email }, "contact.email")
	def(func(e *Env) string { return e.Contact.Phone }, "contact.phone")
	def(func(e *Env) string { return e.Contact.Owner }, "contact.owner")
	def(func(e *Env) string { return e.Lead.Intent }, "lead.intent", "intent")
	def(func(e *Env) string { return e.Lead.Need }, "lead.need")
	def(func(e *Env) string { return e.Lead.Budget }, "lead.budget")
	def(func(e *Env) string { return e.Lead.Timeline }, "lead.timeline")
	def(func(e *Env) string { return e.Lead.Action }, "lead.action", "action")
	def(func(e *Env) string { return e.Conversation.State }, "conversation.state")
}
