package sdk

import (
	"testing"
)

func TestLoggerShipsOnlyWhatTheHubLogs(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want []string
	}{
		{"", []string{"debug", "info", "warn"}}, // no hub told us: ship everything
		{"DEBUG", []string{"debug", "info", "warn"}},
		{"INFO", []string{"info", "warn"}},
		{"WARN", []string{"warn"}},
		{"nonsense", []string{"debug", "info", "warn"}},
	} {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(LogLevelEnv, tt.env)
			host := NewMemoryHost(nil)
			log := HostFromBackend(host).Logger()
			log.Debug("debug")
			log.Info("info")
			log.Warn("warn")
			var got []string
			for _, r := range host.Logs() {
				got = append(got, r.Message)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("shipped %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("shipped %v, want %v", got, tt.want)
				}
			}
		})
	}
}
