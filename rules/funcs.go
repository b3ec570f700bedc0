package rules

import (
	"fmt"
	"sync"
	"time"
	"unicode"

	"github.com/expr-lang/expr"
)

// foldedList and wordsList are needle lists already folded at load time (the
// compiler rewrites constant lists to them), so that only the text is folded
// when the rule runs.
type (
	foldedList []string
	wordsList  []string
	exactList  []string
)

// functionNames are the helpers the language adds to expr's own.
var functionNames = []string{
	"fold", "containsAny", "containsWord", "containsWordExact", "isBlank", "workingHours",
	"hour", "minute", "weekday", "timeOfDay",
	"since", "until", "minutes", "hours", "days", "now",
}

var weekdayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// functions returns the helper functions for one rule set: the clock helpers
// read times in the set's time zone.
func functions(loc *time.Location) []expr.Option {
	var specCache sync.Map // spec string → *Hours, for specs only known at run time
	hoursOf := func(spec any) (*Hours, error) {
		switch s := spec.(type) {
		case *Hours:
			return s, nil
		case string:
			if h, ok := specCache.Load(s); ok {
				return h.(*Hours), nil
			}
			h, err := ParseHours(s, loc)
			if err != nil {
				return nil, err
			}
			specCache.Store(s, h)
			return h, nil
		}
		return nil, fmt.Errorf("workingHours: want an hours spec, got %T", spec)
	}
	needles := func(name string, list any, f textForm) ([]string, error) {
		switch l := list.(type) {
		case foldedList:
			return l, nil
		case wordsList:
			return l, nil
		case exactList:
			return l, nil
		case []string:
			out := make([]string, len(l))
			for i, s := range l {
				out[i] = normalizeNeedle(s, f)
			}
			return out, nil
		case []any:
			out := make([]string, len(l))
			for i, x := range l {
				s, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("%s: list item %d is %T, not text", name, i, x)
				}
				out[i] = normalizeNeedle(s, f)
			}
			return out, nil
		}
		return nil, fmt.Errorf("%s: want a list of texts, got %T", name, list)
	}
	matcher := func(name string, f textForm) func(p ...any) (any, error) {
		return func(p ...any) (any, error) {
			n, err := needles(name, p[1], f)
			if err != nil {
				return nil, err
			}
			return matchText(p[0].(string), n, f), nil
		}
	}
	clock := func(p []any) time.Time { return p[0].(time.Time).In(loc) }
	dur := func(unit time.Duration) func(p ...any) (any, error) {
		return func(p ...any) (any, error) {
			switch n := p[0].(type) {
			case int:
				return time.Duration(n) * unit, nil
			case float64:
				return time.Duration(n * float64(unit)), nil
			}
			return nil, fmt.Errorf("want a number, got %T", p[0])
		}
	}
	patchedAway := func(name string) func(p ...any) (any, error) {
		return func(p ...any) (any, error) { return nil, fmt.Errorf("%s: takes one time", name) }
	}
	return []expr.Option{
		expr.DisableBuiltin("now"),
		// now() is rewritten to read Env.Now, the evaluation's fixed clock;
		// this declaration gives it its type.
		expr.Function("now", func(p ...any) (any, error) { return time.Now(), nil }, new(func() time.Time)),
		expr.Function("since", patchedAway("since"), new(func(time.Time) time.Duration)),
		expr.Function("until", patchedAway("until"), new(func(time.Time) time.Duration)),
		expr.Function("fold", func(p ...any) (any, error) { return Fold(p[0].(string)), nil }, new(func(string) string)),
		expr.Function("containsAny", matcher("containsAny", formFold),
			new(func(string, foldedList) bool), new(func(string, []string) bool), new(func(string, []any) bool)),
		expr.Function("containsWord", matcher("containsWord", formWords),
			new(func(string, wordsList) bool), new(func(string, []string) bool), new(func(string, []any) bool)),
		expr.Function("containsWordExact", matcher("containsWordExact", formExact),
			new(func(string, exactList) bool), new(func(string, []string) bool), new(func(string, []any) bool)),
		expr.Function("isBlank", func(p ...any) (any, error) { return isBlank(p[0].(string)), nil }, new(func(string) bool)),
		expr.Function("workingHours", func(p ...any) (any, error) {
			h, err := hoursOf(p[1])
			if err != nil {
				return nil, err
			}
			return h.Open(p[0].(time.Time)), nil
		}, new(func(time.Time, string) bool), new(func(time.Time, *Hours) bool)),
		expr.Function("hour", func(p ...any) (any, error) { return clock(p).Hour(), nil }, new(func(time.Time) int)),
		expr.Function("minute", func(p ...any) (any, error) { return clock(p).Minute(), nil }, new(func(time.Time) int)),
		expr.Function("weekday", func(p ...any) (any, error) { return weekdayNames[clock(p).Weekday()], nil }, new(func(time.Time) string)),
		expr.Function("timeOfDay", func(p ...any) (any, error) { return clock(p).Format("15:04"), nil }, new(func(time.Time) string)),
		expr.Function("minutes", dur(time.Minute), new(func(int) time.Duration), new(func(float64) time.Duration)),
		expr.Function("hours", dur(time.Hour), new(func(int) time.Duration), new(func(float64) time.Duration)),
		expr.Function("days", dur(24*time.Hour), new(func(int) time.Duration), new(func(float64) time.Duration)),
	}
}

// isBlank reports whether s has no letter or digit: empty, spaces,
// punctuation or emoji only.
func isBlank(s string) bool {
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return false
		}
	}
	return true
}
