package sdk

import (
	"log/slog"
	"os"
)

// LogLevelEnv carries the lowest level the hub logs. Records below it are
// not shipped: each one would be a round trip to the hub, only to be
// dropped there (a debug line per webhook was a third of a channel
// plugin's calls to the hub).
const LogLevelEnv = "SWITCHBOARD_LOG_LEVEL"

// hubLogLevel reads LogLevelEnv; without it (a plugin run by hand, a hub
// before this variable) every record is shipped.
func hubLogLevel() slog.Level {
	var l slog.Level
	if l.UnmarshalText([]byte(os.Getenv(LogLevelEnv))) != nil {
		return slog.LevelDebug - 4
	}
	return l
}
