// Package sdk is what a Switchboard connector author imports.
//
// A plugin is a small Go program that implements one of three kinds:
// Channel (a messaging provider), CRM, or LLM, and hands its implementation
// to ServeChannel, ServeCRM or ServeLLM from main. The hub starts the binary
// as a subprocess and talks to it over gRPC through hashicorp/go-plugin; the
// author only sees the plain Go interfaces and structs of this package.
//
// Calls arrive concurrently: implementations must be safe for use from many
// goroutines. A plugin must never write to stdout before Serve starts: the
// first line on stdout is go-plugin's handshake. Log through Host.Logger or
// to stderr.
//
// Errors should be returned typed (Retryable, RateLimited, Permanent,
// NotFound, Unauthorized, Invalid, Conflict) so the hub can decide whether to
// retry and when. An untyped error is treated as retryable.
//
// This package does not import the hub, the rules engine, fiber or go-redis
// (a test enforces it), so it can become its own module later without an
// import path change.
package sdk
