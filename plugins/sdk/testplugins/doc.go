// Package testplugins holds small but complete plugins of each kind, used by
// the SDK's own tests, the hub's end-to-end tests and the reliability suite.
// Each also builds as a binary (testchannel, testcrm, testllm) so tests run
// them as real subprocesses.
//
// They are deterministic and can be told to misbehave through their config
// (latency, errors, hangs, crashes on a marker in the message text), which
// is how the hub's fault tests inject failures.
package testplugins
