// Package rules is Switchboard's rules engine: YAML rule files, with expr
// conditions checked against a typed environment, that score leads, route
// conversations to teams, define each team's assignment policy, hand
// conversations to people and back, and schedule follow-ups.
//
// LoadDir loads and validates a directory of rule files; every problem is
// reported with its file, line and column. A Ruleset is immutable: Evaluate
// turns the facts about one message (Input) into a Decision that lists every
// rule that fired, and Trace adds every rule's verdict. Engine holds the
// running set and swaps in a new one only once it has loaded completely.
//
// The language is documented in docs/rules.md; the test runner for rule
// files is in rules/ruletest and the `switchboard rules` commands in
// rules/rulescli.
package rules
