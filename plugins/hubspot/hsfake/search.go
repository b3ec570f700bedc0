package hsfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Search limits since the 2024-08-26 change, and HubSpot's page caps.
const (
	maxGroups       = 5
	maxFiltersGroup = 10
	maxFilters      = 25
	maxPageSize     = 200
	maxResults      = 10000
)

type filter struct {
	PropertyName string   `json:"propertyName"`
	Operator     string   `json:"operator"`
	Value        *string  `json:"value"`
	Values       []string `json:"values"`
	HighValue    *string  `json:"highValue"`
}

type searchBody struct {
	FilterGroups []struct {
		Filters []filter `json:"filters"`
	} `json:"filterGroups"`
	Properties []string          `json:"properties"`
	Sorts      []json.RawMessage `json:"sorts"`
	Limit      int               `json:"limit"`
	After      string            `json:"after"`
	Query      string            `json:"query"`
}

// UnmarshalJSON accepts numbers for value/highValue too, as HubSpot does.
func (f *filter) UnmarshalJSON(b []byte) error {
	var raw struct {
		PropertyName string            `json:"propertyName"`
		Operator     string            `json:"operator"`
		Value        json.RawMessage   `json:"value"`
		Values       []json.RawMessage `json:"values"`
		HighValue    json.RawMessage   `json:"highValue"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	f.PropertyName, f.Operator = raw.PropertyName, raw.Operator
	f.Value, f.HighValue = scalar(raw.Value), scalar(raw.HighValue)
	for _, v := range raw.Values {
		if s := scalar(v); s != nil {
			f.Values = append(f.Values, *s)
		}
	}
	return nil
}

func scalar(raw json.RawMessage) *string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return &s
	}
	s = strings.TrimSpace(string(raw))
	return &s
}

type sortSpec struct {
	prop string
	desc bool
}

func parseSorts(raw []json.RawMessage) ([]sortSpec, error) {
	var out []sortSpec
	for _, r := range raw {
		var s string
		if json.Unmarshal(r, &s) == nil { // the SDK's string form; "-prop" sorts descending
			out = append(out, sortSpec{prop: strings.TrimPrefix(s, "-"), desc: strings.HasPrefix(s, "-")})
			continue
		}
		var o struct {
			PropertyName string `json:"propertyName"`
			Direction    string `json:"direction"`
		}
		if err := json.Unmarshal(r, &o); err != nil {
			return nil, err
		}
		out = append(out, sortSpec{prop: o.PropertyName, desc: o.Direction == "DESCENDING"})
	}
	return out, nil
}

func (s *Server) searchLocked(w http.ResponseWriter, t string, body []byte) {
	var in searchBody
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+err.Error(), nil)
		return
	}
	sorts, err := parseSorts(in.Sorts)
	if err != nil {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid sorts: "+err.Error(), nil)
		return
	}
	total := 0
	for _, g := range in.FilterGroups {
		total += len(g.Filters)
		if len(g.Filters) > maxFiltersGroup {
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("Too many filters in a filter group: %d > %d", len(g.Filters), maxFiltersGroup), nil)
			return
		}
		for _, f := range g.Filters {
			if msg := s.checkFilterLocked(t, f); msg != "" {
				writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", msg, nil)
				return
			}
		}
	}
	if len(in.FilterGroups) > maxGroups || total > maxFilters {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR",
			fmt.Sprintf("Too many filter groups or filters: %d groups, %d filters (max %d groups, %d filters)", len(in.FilterGroups), total, maxGroups, maxFilters), nil)
		return
	}
	limit := in.Limit
	if limit == 0 {
		limit = 10
	}
	if limit < 0 || limit > maxPageSize {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("limit must be between 1 and %d", maxPageSize), nil)
		return
	}
	after := 0
	if in.After != "" {
		if after, err = strconv.Atoi(in.After); err != nil || after < 0 {
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "after must be a non-negative integer", nil)
			return
		}
	}
	if after+limit > maxResults {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("paging beyond %d results is not supported", maxResults), nil)
		return
	}

	visibleBefore := s.opts.Now().Add(-s.opts.SearchLag)
	var hits []*Object
	for _, o := range s.sortedLocked(t) {
		if o.Archived || (s.opts.SearchLag > 0 && o.CreatedAt.After(visibleBefore)) {
			continue
		}
		if s.matchesLocked(o, in.FilterGroups, in.Query) {
			hits = append(hits, o)
		}
	}
	if len(sorts) > 0 {
		sort.SliceStable(hits, func(i, j int) bool {
			for _, sp := range sorts {
				a, b := s.valueLocked(hits[i], sp.prop), s.valueLocked(hits[j], sp.prop)
				if a == b {
					continue
				}
				c := cmp{numeric: s.props[t][sp.prop].Type == "number"}
				return c.less(a, b) != sp.desc
			}
			return false
		})
	}
	res := []any{}
	for i := after; i < len(hits) && i < after+limit; i++ {
		res = append(res, s.renderLocked(hits[i], in.Properties, false))
	}
	out := map[string]any{"total": len(hits), "results": res}
	if after+limit < len(hits) {
		out["paging"] = map[string]any{"next": map[string]any{"after": strconv.Itoa(after + limit)}}
	}
	writeJSON(w, http.StatusOK, out)
}

var operators = map[string]bool{"EQ": true, "NEQ": true, "LT": true, "LTE": true, "GT": true, "GTE": true, "BETWEEN": true,
	"IN": true, "NOT_IN": true, "HAS_PROPERTY": true, "NOT_HAS_PROPERTY": true, "CONTAINS_TOKEN": true, "NOT_CONTAINS_TOKEN": true}

func (s *Server) checkFilterLocked(t string, f filter) string {
	if !operators[f.Operator] {
		return fmt.Sprintf("Invalid operator %q", f.Operator)
	}
	if _, ok := s.props[t][f.PropertyName]; !ok {
		return fmt.Sprintf("Unable to find property %s for object type %s", f.PropertyName, t)
	}
	switch f.Operator {
	case "IN", "NOT_IN":
		if len(f.Values) == 0 {
			return fmt.Sprintf("%s requires values", f.Operator)
		}
	case "BETWEEN":
		if f.Value == nil || f.HighValue == nil {
			return "BETWEEN requires value and highValue"
		}
	case "HAS_PROPERTY", "NOT_HAS_PROPERTY":
	default:
		if f.Value == nil {
			return fmt.Sprintf("%s requires a value", f.Operator)
		}
	}
	return ""
}

func (s *Server) valueLocked(o *Object, prop string) string {
	if v, ok := s.systemPropsLocked(o)[prop]; ok {
		return v
	}
	return o.Properties[prop]
}

// matchesLocked ORs the groups and ANDs the filters inside each group.
func (s *Server) matchesLocked(o *Object, groups []struct {
	Filters []filter `json:"filters"`
}, query string) bool {
	if query != "" && !s.queryMatchesLocked(o, query) {
		return false
	}
	if len(groups) == 0 {
		return true
	}
	for _, g := range groups {
		ok := true
		for _, f := range g.Filters {
			if !s.filterMatchesLocked(o, f) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (s *Server) queryMatchesLocked(o *Object, q string) bool {
	q = strings.ToLower(q)
	for _, p := range []string{"email", "firstname", "lastname", "phone", "company", "dealname", "name"} {
		if strings.Contains(strings.ToLower(o.Properties[p]), q) {
			return true
		}
	}
	return false
}

func (s *Server) filterMatchesLocked(o *Object, f filter) bool {
	v, has := o.Properties[f.PropertyName]
	if sys, ok := s.systemPropsLocked(o)[f.PropertyName]; ok {
		v, has = sys, true
	}
	has = has && v != ""
	val := ""
	if f.Value != nil {
		val = *f.Value
	}
	// Numbers compare as numbers only for number properties: channel ids
	// are long digit strings that a float64 would round together.
	c := cmp{numeric: s.props[o.Type][f.PropertyName].Type == "number"}
	switch f.Operator {
	case "HAS_PROPERTY":
		return has
	case "NOT_HAS_PROPERTY":
		return !has
	case "EQ":
		return has && c.equal(v, val)
	case "NEQ":
		return !has || !c.equal(v, val)
	case "IN":
		return has && c.anyEqual(v, f.Values)
	case "NOT_IN":
		return !has || !c.anyEqual(v, f.Values)
	case "LT":
		return has && c.less(v, val)
	case "LTE":
		return has && !c.less(val, v)
	case "GT":
		return has && c.less(val, v)
	case "GTE":
		return has && !c.less(v, val)
	case "BETWEEN":
		return has && !c.less(v, val) && !c.less(*f.HighValue, v)
	case "CONTAINS_TOKEN":
		return has && containsToken(v, val)
	case "NOT_CONTAINS_TOKEN":
		return !has || !containsToken(v, val)
	}
	return false
}

// cmp compares property values; text compares case-insensitively, as
// HubSpot's search does.
type cmp struct{ numeric bool }

func (c cmp) equal(a, b string) bool {
	if c.numeric {
		fa, err1 := strconv.ParseFloat(a, 64)
		fb, err2 := strconv.ParseFloat(b, 64)
		if err1 == nil && err2 == nil {
			return fa == fb
		}
	}
	return strings.EqualFold(a, b)
}

func (c cmp) anyEqual(v string, values []string) bool {
	for _, x := range values {
		if c.equal(v, x) {
			return true
		}
	}
	return false
}

func (c cmp) less(a, b string) bool {
	if c.numeric {
		fa, err1 := strconv.ParseFloat(a, 64)
		fb, err2 := strconv.ParseFloat(b, 64)
		if err1 == nil && err2 == nil {
			return fa < fb
		}
	}
	return strings.ToLower(a) < strings.ToLower(b)
}

func containsToken(v, token string) bool {
	token = strings.ToLower(strings.Trim(token, "*"))
	for _, w := range strings.FieldsFunc(strings.ToLower(v), func(r rune) bool { return r == ' ' || r == '@' || r == '.' || r == ';' }) {
		if strings.HasPrefix(w, token) {
			return true
		}
	}
	return false
}
