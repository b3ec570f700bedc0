package rules

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zones must resolve in minimal containers with no /usr/share/zoneinfo
)

// Hours is a weekly business-hours calendar in one time zone, with optional
// holidays. The zero of *Hours (nil) means always open.
type Hours struct {
	spec     string
	loc      *time.Location
	week     [7][]span // by time.Weekday; minutes since midnight, sorted
	holidays map[int]bool
}

type span struct{ from, to int } // [from, to) in minutes since midnight

var (
	dashSpaces = regexp.MustCompile(`\s*-\s*`)
	dayNames   = map[string]time.Weekday{
		"sun": time.Sunday, "sunday": time.Sunday, "cn": time.Sunday,
		"mon": time.Monday, "monday": time.Monday, "t2": time.Monday,
		"tue": time.Tuesday, "tuesday": time.Tuesday, "t3": time.Tuesday,
		"wed": time.Wednesday, "wednesday": time.Wednesday, "t4": time.Wednesday,
		"thu": time.Thursday, "thursday": time.Thursday, "t5": time.Thursday,
		"fri": time.Friday, "friday": time.Friday, "t6": time.Friday,
		"sat": time.Saturday, "saturday": time.Saturday, "t7": time.Saturday,
	}
)

// ParseHours parses a business-hours spec such as
//
//	Mon-Fri 08:00-12:00 13:30-17:30, Sat 08:00-12:00 Asia/Ho_Chi_Minh
//	T2-T6 8h-17h30, T7 8h-12h
//	24/7
//
// Groups are separated by commas or semicolons; each names a day or a day
// range (English or Vietnamese: Mon..Sun, T2..T7, CN; "daily") and one or
// more time ranges. A trailing IANA zone overrides loc; loc nil means UTC.
func ParseHours(spec string, loc *time.Location) (*Hours, error) {
	if loc == nil {
		loc = time.UTC
	}
	h := &Hours{spec: strings.TrimSpace(spec), loc: loc}
	norm := dashSpaces.ReplaceAllString(strings.TrimSpace(spec), "-")
	if norm == "" {
		return nil, fmt.Errorf("empty hours spec")
	}
	groups := strings.FieldsFunc(norm, func(r rune) bool { return r == ',' || r == ';' })
	for gi, g := range groups {
		fields := strings.Fields(g)
		if gi == len(groups)-1 && len(fields) > 1 {
			if last := fields[len(fields)-1]; strings.Contains(last, "/") && last != "24/7" || last == "UTC" {
				z, err := time.LoadLocation(last)
				if err != nil {
					return nil, fmt.Errorf("unknown time zone %q", last)
				}
				h.loc = z
				fields = fields[:len(fields)-1]
			}
		}
		if len(fields) == 1 && (fields[0] == "24/7" || strings.EqualFold(fields[0], "always")) {
			for d := range h.week {
				h.week[d] = append(h.week[d], span{0, 24 * 60})
			}
			continue
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("%q: want days then time ranges, as in \"Mon-Fri 08:00-18:00\"", g)
		}
		days, err := parseDays(fields[0])
		if err != nil {
			return nil, err
		}
		for _, r := range fields[1:] {
			sp, err := parseSpan(r)
			if err != nil {
				return nil, err
			}
			for _, d := range days {
				h.week[d] = append(h.week[d], sp)
			}
		}
	}
	for d := range h.week {
		s := h.week[d]
		sort.Slice(s, func(i, j int) bool { return s[i].from < s[j].from })
		for i := 1; i < len(s); i++ {
			if s[i].from < s[i-1].to {
				return nil, fmt.Errorf("overlapping ranges on %s", time.Weekday(d))
			}
		}
	}
	return h, nil
}

func parseDays(s string) ([]time.Weekday, error) {
	ls := strings.ToLower(s)
	if ls == "daily" || ls == "everyday" {
		return []time.Weekday{0, 1, 2, 3, 4, 5, 6}, nil
	}
	from, to, isRange := strings.Cut(ls, "-")
	a, ok := dayNames[from]
	if !ok {
		return nil, fmt.Errorf("unknown day %q (want Mon..Sun, T2..T7 or CN)", from)
	}
	if !isRange {
		return []time.Weekday{a}, nil
	}
	b, ok := dayNames[to]
	if !ok {
		return nil, fmt.Errorf("unknown day %q (want Mon..Sun, T2..T7 or CN)", to)
	}
	var out []time.Weekday
	for d := a; ; d = (d + 1) % 7 {
		out = append(out, d)
		if d == b {
			return out, nil
		}
	}
}

func parseSpan(s string) (span, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return span{}, fmt.Errorf("%q: want a time range such as 08:00-17:30", s)
	}
	from, err := parseClock(a)
	if err != nil {
		return span{}, err
	}
	to, err := parseClock(b)
	if err != nil {
		return span{}, err
	}
	if to <= from {
		return span{}, fmt.Errorf("%q: the range ends before it starts (split ranges that cross midnight: 22:00-24:00 one day, 00:00-06:00 the next)", s)
	}
	return span{from, to}, nil
}

// parseClock reads 08:00, 8:00, 8h, 8h30 or 24:00 as minutes since midnight.
func parseClock(s string) (int, error) {
	ls := strings.ToLower(s)
	var hs, ms string
	switch {
	case strings.Contains(ls, ":"):
		hs, ms, _ = strings.Cut(ls, ":")
	case strings.Contains(ls, "h"):
		hs, ms, _ = strings.Cut(ls, "h")
	default:
		return 0, fmt.Errorf("%q: want a time such as 08:00 or 8h30", s)
	}
	if ms == "" {
		ms = "0"
	}
	hh, err1 := strconv.Atoi(hs)
	mm, err2 := strconv.Atoi(ms)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || hh == 24 && mm != 0 {
		return 0, fmt.Errorf("%q is not a time of day", s)
	}
	return hh*60 + mm, nil
}

// String returns the spec the hours were parsed from.
func (h *Hours) String() string {
	if h == nil {
		return "always"
	}
	return h.spec
}

// Location is the time zone the hours are in.
func (h *Hours) Location() *time.Location {
	if h == nil {
		return time.UTC
	}
	return h.loc
}

func dateKey(y int, m time.Month, d int) int { return y*10000 + int(m)*100 + d }

// Open reports whether t falls in business hours (and not on a holiday).
func (h *Hours) Open(t time.Time) bool {
	if h == nil {
		return true
	}
	lt := t.In(h.loc)
	y, m, d := lt.Date()
	if h.holidays[dateKey(y, m, d)] {
		return false
	}
	min := lt.Hour()*60 + lt.Minute()
	for _, s := range h.week[lt.Weekday()] {
		if min >= s.from && min < s.to {
			return true
		}
	}
	return false
}

// NextOpen returns t when the hours are open at t, and otherwise the start of
// the next opening (in the hours' zone). It returns the zero time when the
// hours never open in the coming 400 days.
func (h *Hours) NextOpen(t time.Time) time.Time {
	if h.Open(t) {
		return t
	}
	lt := t.In(h.loc)
	y, m, d := lt.Date()
	for i := 0; i < 400; i++ {
		day := time.Date(y, m, d+i, 0, 0, 0, 0, h.loc)
		dy, dm, dd := day.Date()
		if h.holidays[dateKey(dy, dm, dd)] {
			continue
		}
		for _, s := range h.week[day.Weekday()] {
			start := time.Date(dy, dm, dd, s.from/60, s.from%60, 0, 0, h.loc)
			if start.After(t) {
				return start
			}
		}
	}
	return time.Time{}
}

// withHolidays returns a copy of h closed on the given dates.
func (h *Hours) withHolidays(dates map[int]bool) *Hours {
	c := *h
	c.holidays = dates
	return &c
}

// parseHolidays reads dates (2025-09-02) and date ranges
// (2026-02-16..2026-02-22) into set.
func parseHoliday(s string, set map[int]bool) error {
	s = strings.TrimSpace(s)
	a, b, isRange := strings.Cut(s, "..")
	from, err := time.Parse(time.DateOnly, strings.TrimSpace(a))
	if err != nil {
		return fmt.Errorf("%q is not a date (want 2025-09-02 or 2026-02-16..2026-02-22)", s)
	}
	to := from
	if isRange {
		if to, err = time.Parse(time.DateOnly, strings.TrimSpace(b)); err != nil {
			return fmt.Errorf("%q is not a date range (want 2026-02-16..2026-02-22)", s)
		}
		if to.Before(from) || to.Sub(from) > 366*24*time.Hour {
			return fmt.Errorf("%q: the range must go forward and last at most a year", s)
		}
	}
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		y, m, dd := d.Date()
		set[dateKey(y, m, dd)] = true
	}
	return nil
}

// parseHolidayFile reads one date or date range a line; # starts a comment.
// It returns the problems with their line numbers.
func parseHolidayFile(data []byte, set map[int]bool) []lineError {
	var errs []lineError
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if err := parseHoliday(line, set); err != nil {
			errs = append(errs, lineError{n, err})
		}
	}
	return errs
}

type lineError struct {
	line int
	err  error
}
