package pluginhost

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// slogAdapter routes go-plugin's hclog output, including the lines a plugin
// writes to stderr (parsed by go-plugin from hclog JSON), into the hub's
// slog logger tagged with the plugin's name.
type slogAdapter struct {
	l     *slog.Logger
	name  string
	args  []any
	level hclog.Level
}

func newSlogAdapter(l *slog.Logger, name string) hclog.Logger {
	return &slogAdapter{l: l, name: name, level: hclog.Debug}
}

var levels = map[hclog.Level]slog.Level{
	hclog.Trace: slog.LevelDebug - 4, hclog.Debug: slog.LevelDebug, hclog.Info: slog.LevelInfo,
	hclog.Warn: slog.LevelWarn, hclog.Error: slog.LevelError,
}

func (a *slogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level < a.level {
		return
	}
	sl, ok := levels[level]
	if !ok {
		sl = slog.LevelInfo
	}
	ctx := context.Background()
	if !a.l.Enabled(ctx, sl) {
		return
	}
	all := make([]any, 0, len(a.args)+len(args)+2)
	all = append(all, a.args...)
	for i := 0; i+1 < len(args); i += 2 {
		// go-plugin names the binary path "plugin"; the logger already
		// carries the instance under that key.
		if k, ok := args[i].(string); ok && k == "plugin" {
			k = "binary"
			all = append(all, k, args[i+1])
			continue
		}
		all = append(all, args[i], args[i+1])
	}
	a.l.Log(ctx, sl, msg, all...)
}

func (a *slogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *slogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *slogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *slogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *slogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }
func (a *slogAdapter) IsTrace() bool                 { return a.l.Enabled(context.Background(), slog.LevelDebug-4) }
func (a *slogAdapter) IsDebug() bool                 { return a.l.Enabled(context.Background(), slog.LevelDebug) }
func (a *slogAdapter) IsInfo() bool                  { return a.l.Enabled(context.Background(), slog.LevelInfo) }
func (a *slogAdapter) IsWarn() bool                  { return a.l.Enabled(context.Background(), slog.LevelWarn) }
func (a *slogAdapter) IsError() bool                 { return a.l.Enabled(context.Background(), slog.LevelError) }
func (a *slogAdapter) ImpliedArgs() []any            { return a.args }
func (a *slogAdapter) Name() string                  { return a.name }
func (a *slogAdapter) SetLevel(l hclog.Level)        { a.level = l }
func (a *slogAdapter) GetLevel() hclog.Level         { return a.level }

func (a *slogAdapter) With(args ...any) hclog.Logger {
	n := *a
	n.args = append(append([]any(nil), a.args...), args...)
	return &n
}

// Named keeps the plugin's own name: go-plugin appends the binary path,
// which says nothing the "plugin" attribute does not.
func (a *slogAdapter) Named(string) hclog.Logger      { n := *a; return &n }
func (a *slogAdapter) ResetNamed(string) hclog.Logger { n := *a; return &n }

func (a *slogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(nil), "", 0)
}

func (a *slogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) { a.Info(string(p)); return len(p), nil })
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
