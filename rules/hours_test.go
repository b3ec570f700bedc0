package rules

import (
	"strings"
	"testing"
	"time"
)

var hcm = mustZone("Asia/Ho_Chi_Minh")

func mustZone(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, hcm)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseHours(t *testing.T) {
	good := []string{
		"Mon-Fri 08:00-18:00",
		"Mon-Fri 08:00-12:00 13:30-17:30, Sat 08:00-12:00",
		"T2-T6 8h-17h30; T7 8h-12h",
		"CN 09:00-11:00",
		"daily 00:00-24:00",
		"24/7",
		"Mon - Fri 08:00 - 18:00 Asia/Ho_Chi_Minh",
		"Sat-Mon 10:00-14:00", // wraps round the week
	}
	for _, s := range good {
		if _, err := ParseHours(s, hcm); err != nil {
			t.Errorf("ParseHours(%q): %v", s, err)
		}
	}
	bad := map[string]string{
		"":                              "empty",
		"Mon-Fri":                       "want days then time ranges",
		"Mon-Fry 08:00-18:00":           `unknown day "fry"`,
		"Mon-Fri 18:00-08:00":           "ends before it starts",
		"Mon-Fri 08:00-18:00 Mars/Base": `unknown time zone`,
		"Mon 08:00-12:00 11:00-13:00":   "overlapping",
		"Mon 25:00-26:00":               "not a time of day",
		"Mon 8-12":                      "want a time",
	}
	for s, want := range bad {
		if _, err := ParseHours(s, hcm); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseHours(%q) = %v, want an error with %q", s, err, want)
		}
	}
}

func TestHoursOpenAndNextOpen(t *testing.T) {
	h, err := ParseHours("Mon-Fri 08:00-12:00 13:30-17:30, Sat 08:00-12:00", hcm)
	if err != nil {
		t.Fatal(err)
	}
	hol := map[int]bool{}
	if err := parseHoliday("2025-09-01..2025-09-02", hol); err != nil {
		t.Fatal(err)
	}
	h = h.withHolidays(hol)
	cases := []struct {
		now  string
		open bool
		next string
	}{
		{"2025-06-02 09:00", true, "2025-06-02 09:00"},  // Monday morning
		{"2025-06-02 07:59", false, "2025-06-02 08:00"}, // before opening
		{"2025-06-02 12:30", false, "2025-06-02 13:30"}, // lunch
		{"2025-06-02 17:30", false, "2025-06-03 08:00"}, // closing time is closed
		{"2025-06-07 11:59", true, "2025-06-07 11:59"},  // Saturday morning
		{"2025-06-07 14:00", false, "2025-06-09 08:00"}, // Saturday afternoon → Monday
		{"2025-06-08 10:00", false, "2025-06-09 08:00"}, // Sunday
		{"2025-09-01 10:00", false, "2025-09-03 08:00"}, // holiday Monday and Tuesday
		{"2025-08-30 12:00", false, "2025-09-03 08:00"}, // Saturday noon before the holidays
	}
	for _, c := range cases {
		now := at(c.now)
		if got := h.Open(now); got != c.open {
			t.Errorf("Open(%s) = %v", c.now, got)
		}
		if got := h.NextOpen(now); !got.Equal(at(c.next)) {
			t.Errorf("NextOpen(%s) = %s, want %s", c.now, got.In(hcm).Format("2006-01-02 15:04"), c.next)
		}
	}
	// A time given in another zone is read in the hours' zone.
	if !h.Open(time.Date(2025, 6, 2, 2, 0, 0, 0, time.UTC)) { // 09:00 in Ho Chi Minh City
		t.Error("02:00 UTC Monday is 09:00 in Vietnam: should be open")
	}
	var always *Hours
	if !always.Open(at("2025-06-08 03:00")) || always.String() != "always" {
		t.Error("nil hours must always be open")
	}
	never, _ := ParseHours("Mon 08:00-09:00", hcm)
	all := map[int]bool{}
	parseHoliday("2025-01-01..2025-12-31", all)
	parseHoliday("2026-01-01..2026-12-31", all)
	if got := never.withHolidays(all).NextOpen(at("2025-01-01 00:00")); !got.IsZero() {
		t.Errorf("hours that never open: NextOpen = %v, want zero", got)
	}
}

func TestTrailingZoneOverrides(t *testing.T) {
	h, err := ParseHours("Mon-Fri 09:00-17:00 Europe/London", hcm)
	if err != nil {
		t.Fatal(err)
	}
	if h.Location().String() != "Europe/London" {
		t.Errorf("zone = %s", h.Location())
	}
}

func TestParseHolidayFile(t *testing.T) {
	set := map[int]bool{}
	errs := parseHolidayFile([]byte("# Tết\n2026-02-14..2026-02-22 # nine days\n\n2026-04-30\nnot a date\n"), set)
	if len(set) != 10 {
		t.Errorf("%d dates, want 10", len(set))
	}
	if len(errs) != 1 || errs[0].line != 5 {
		t.Errorf("errors = %+v, want one on line 5", errs)
	}
}
