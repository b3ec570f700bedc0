// Package e2e holds end-to-end tests that run the real hub binary with real
// plugin subprocesses, real stores and real HTTP on loopback.
package e2e
