// Package version holds the hub's version, set at build time with
// -ldflags "-X github.com/switchboard-hub/switchboard/hub/version.Version=v1.2.3".
package version

// Version of this build.
var Version = "dev"
