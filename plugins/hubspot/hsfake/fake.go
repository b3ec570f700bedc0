package hsfake

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultToken is the private-app token the fake accepts unless told otherwise.
const DefaultToken = "pat-na1-00000000-fake-fake-fake-000000000000"

// Limits are the account's rate limits. Zero fields take the defaults of a
// Professional private app (190 per 10 s, 650,000 per day, 5 searches per s).
type Limits struct {
	TenSecond int // requests per rolling 10 seconds
	Daily     int // requests per day (UTC in the fake)
	Search    int // search requests per rolling second
}

func (l Limits) withDefaults() Limits {
	if l.TenSecond == 0 {
		l.TenSecond = 190
	}
	if l.Daily == 0 {
		l.Daily = 650000
	}
	if l.Search == 0 {
		l.Search = 5
	}
	return l
}

// Options configure a fake. The zero value is a working fake.
type Options struct {
	Token  string           // accepted Bearer token; DefaultToken if empty
	Limits Limits           // rate limits
	Now    func() time.Time // clock for timestamps and rate-limit windows
	// SearchLag hides objects from search until they are this old, the way
	// HubSpot's search index trails its writes by seconds.
	SearchLag time.Duration
	// NoRateLimit turns the fake's own rate limiting off (faults still work).
	NoRateLimit bool
}

// Object is a stored CRM record.
type Object struct {
	Type       string
	ID         string
	Properties map[string]string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Archived   bool
}

// Association links two records with a HubSpot association type id.
type Association struct {
	FromType, FromID string
	ToType, ToID     string
	TypeID           int
	Category         string
}

// Property is a property definition.
type Property struct {
	Name           string   `json:"name"`
	Label          string   `json:"label"`
	Type           string   `json:"type"`
	FieldType      string   `json:"fieldType"`
	GroupName      string   `json:"groupName"`
	Description    string   `json:"description,omitempty"`
	HasUniqueValue bool     `json:"hasUniqueValue"`
	Hidden         bool     `json:"hidden"`
	FormField      bool     `json:"formField"`
	Options        []Option `json:"options"`
	Custom         bool     `json:"-"`
}

// Option is one allowed value of an enumeration property.
type Option struct {
	Label        string `json:"label"`
	Value        string `json:"value"`
	DisplayOrder int    `json:"displayOrder"`
	Hidden       bool   `json:"hidden"`
}

func (p Property) options() []string {
	out := make([]string, len(p.Options))
	for i, o := range p.Options {
		out[i] = o.Value
	}
	return out
}

// Owner is a HubSpot user who can own records.
type Owner struct {
	ID        string
	Email     string
	FirstName string
	LastName  string
	UserID    int
	Archived  bool
}

// Request is one request the fake received, without its Authorization header.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	Status int
}

// Fault makes the next Count matching requests fail. Empty Method or
// PathPrefix match anything.
type Fault struct {
	Method     string
	PathPrefix string
	Count      int
	// Status is the HTTP status to answer: 5xx gives HubSpot's error body
	// (HTML for 502/504, as its edge sends), 429 gives a rate-limit body.
	Status int
	// Policy is the 429 policyName: TEN_SECONDLY_ROLLING (default), DAILY or SECONDLY.
	Policy string
	// RetryAfter, if set, is sent as a Retry-After header (seconds).
	RetryAfter int
}

// Server is the fake. Create it with New or Start and Close it when done.
type Server struct {
	URL string
	srv *httptest.Server

	mu        sync.Mutex
	opts      Options
	token     string
	revoked   bool
	nextID    int64
	objects   map[string]map[string]*Object
	assocs    []Association
	props     map[string]map[string]Property
	owners    []Owner
	pipelines map[string][]string
	faults    []Fault
	requests  []Request
	tenSec    []time.Time
	searchSec []time.Time
	daily     map[string]int
}

// Start starts a fake and closes it at the end of the test.
func Start(t interface {
	Cleanup(func())
	Helper()
}, opts Options) *Server {
	t.Helper()
	s := New(opts)
	t.Cleanup(s.Close)
	return s
}

// New starts a fake on a loopback port.
func New(opts Options) *Server {
	s := &Server{}
	s.opts = opts
	s.opts.Limits = opts.Limits.withDefaults()
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	s.token = opts.Token
	if s.token == "" {
		s.token = DefaultToken
	}
	s.resetLocked()
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Token is the Bearer token the fake accepts.
func (s *Server) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// Reset forgets all records, associations, custom properties, faults,
// recorded requests and rate-limit counters; owners and pipelines stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	owners, pipelines := s.owners, s.pipelines
	s.resetLocked()
	s.owners, s.pipelines = owners, pipelines
}

func (s *Server) resetLocked() {
	s.nextID = 1000
	s.objects = map[string]map[string]*Object{}
	for _, t := range objectTypes {
		s.objects[t] = map[string]*Object{}
	}
	s.assocs = nil
	s.props = builtinProperties()
	s.owners = nil
	s.pipelines = map[string][]string{"default": {"appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
		"decisionmakerboughtin", "contractsent", "closedwon", "closedlost"}}
	s.faults = nil
	s.requests = nil
	s.tenSec, s.searchSec = nil, nil
	s.daily = map[string]int{}
	s.revoked = false
}

// RevokeToken makes every later request fail with 401 until SetToken.
func (s *Server) RevokeToken() { s.mu.Lock(); s.revoked = true; s.mu.Unlock() }

// SetToken changes the accepted token and lifts a revocation.
func (s *Server) SetToken(tok string) { s.mu.Lock(); s.token, s.revoked = tok, false; s.mu.Unlock() }

// SetSearchLag changes how long new objects stay invisible to search.
func (s *Server) SetSearchLag(d time.Duration) { s.mu.Lock(); s.opts.SearchLag = d; s.mu.Unlock() }

// Inject queues a fault.
func (s *Server) Inject(f Fault) {
	if f.Count == 0 {
		f.Count = 1
	}
	s.mu.Lock()
	s.faults = append(s.faults, f)
	s.mu.Unlock()
}

// FailNext makes the next n requests answer status (5xx).
func (s *Server) FailNext(n, status int) { s.Inject(Fault{Count: n, Status: status}) }

// RateLimitNext makes the next n requests answer 429 with policy
// (TEN_SECONDLY_ROLLING, DAILY or SECONDLY).
func (s *Server) RateLimitNext(n int, policy string) {
	s.Inject(Fault{Count: n, Status: http.StatusTooManyRequests, Policy: policy})
}

// AddOwner registers an owner.
func (s *Server) AddOwner(o Owner) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owners = append(s.owners, o)
}

// AddPipeline registers a deal pipeline with its stage ids.
func (s *Server) AddPipeline(id string, stages ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pipelines[id] = append([]string(nil), stages...)
}

// AddProperty defines a property on an object type, as an admin would in the UI.
func (s *Server) AddProperty(objectType string, p Property) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.Custom = true
	s.props[objectType][p.Name] = p
}

// Property returns a property definition.
func (s *Server) Property(objectType, name string) (Property, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.props[objectType][name]
	return p, ok
}

// Objects returns the live (not archived) records of a type, ordered by id.
func (s *Server) Objects(objectType string) []Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Object
	for _, o := range s.sortedLocked(objectType) {
		if !o.Archived {
			out = append(out, copyObject(o))
		}
	}
	return out
}

// Object returns one record.
func (s *Server) Object(objectType, id string) (Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[objectType][id]
	if !ok {
		return Object{}, false
	}
	return copyObject(o), true
}

// Contacts is Objects("contacts").
func (s *Server) Contacts() []Object { return s.Objects("contacts") }

// ContactCount counts live contacts.
func (s *Server) ContactCount() int { return len(s.Contacts()) }

// CreateContact stores a contact directly, as if made in HubSpot's UI.
func (s *Server) CreateContact(props map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.insertLocked("contacts", props).ID
}

// Associations lists associations from a record (all of them if fromID is empty).
func (s *Server) Associations(fromType, fromID string) []Association {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Association
	for _, a := range s.assocs {
		if a.FromType == fromType && (fromID == "" || a.FromID == fromID) {
			out = append(out, a)
		}
	}
	return out
}

// Associated lists the ids of fromType records associated to (toType, toID).
// NotesFor and friends are built on it.
func (s *Server) Associated(fromType, toType, toID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, a := range s.assocs {
		if a.FromType == fromType && a.ToType == toType && a.ToID == toID {
			if o := s.objects[fromType][a.FromID]; o != nil && !o.Archived {
				out = append(out, a.FromID)
			}
		}
	}
	return out
}

// NotesFor returns the notes associated to a contact.
func (s *Server) NotesFor(contactID string) []Object {
	return s.objectsByID("notes", s.Associated("notes", "contacts", contactID))
}

// TasksFor returns the tasks associated to a contact.
func (s *Server) TasksFor(contactID string) []Object {
	return s.objectsByID("tasks", s.Associated("tasks", "contacts", contactID))
}

// DealsFor returns the deals associated to a contact.
func (s *Server) DealsFor(contactID string) []Object {
	return s.objectsByID("deals", s.Associated("deals", "contacts", contactID))
}

func (s *Server) objectsByID(t string, ids []string) []Object {
	var out []Object
	for _, id := range ids {
		if o, ok := s.Object(t, id); ok {
			out = append(out, o)
		}
	}
	return out
}

// Requests returns every request received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RequestsTo returns the requests with this method whose path starts with prefix.
func (s *Server) RequestsTo(method, prefix string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Method == method && strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// ---------------------------------------------------------------- HTTP

const tsLayout = "2006-01-02T15:04:05.000Z"

var objectTypes = []string{"contacts", "deals", "notes", "tasks", "companies"}

// assocTable maps (from type, HUBSPOT_DEFINED type id) to the target type.
var assocTable = map[string]map[int]string{
	"notes":     {202: "contacts", 214: "deals", 190: "companies"},
	"tasks":     {204: "contacts", 216: "deals", 192: "companies"},
	"deals":     {3: "contacts", 341: "companies", 5: "companies"},
	"contacts":  {4: "deals", 279: "companies", 1: "companies"},
	"companies": {},
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		h := r.Header.Clone()
		h.Del("Authorization")
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
			Header: h, Body: body, Status: rec.status})
		s.mu.Unlock()
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.authorizedLocked(r) {
		// HubSpot answers an absent or unknown token the same way.
		writeError(rec, http.StatusUnauthorized, "INVALID_AUTHENTICATION",
			"Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview", nil)
		return
	}
	isSearch := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/search")
	if f, ok := s.takeFaultLocked(r); ok {
		s.writeFaultLocked(rec, f, isSearch)
		return
	}
	if !s.opts.NoRateLimit {
		if policy := s.limitLocked(isSearch); policy != "" {
			s.writeRateLimitLocked(rec, policy, 0, isSearch)
			return
		}
	}
	if !isSearch {
		s.rateHeadersLocked(rec.Header())
	}
	s.routeLocked(rec, r, body)
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

func (s *Server) authorizedLocked(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && !s.revoked && tok == s.token
}

func (s *Server) takeFaultLocked(r *http.Request) (Fault, bool) {
	for i := range s.faults {
		f := &s.faults[i]
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.PathPrefix) {
			out := *f
			f.Count--
			if f.Count <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return out, true
		}
	}
	return Fault{}, false
}

func (s *Server) writeFaultLocked(w http.ResponseWriter, f Fault, isSearch bool) {
	if f.Status == http.StatusTooManyRequests {
		policy := f.Policy
		if policy == "" {
			policy = "TEN_SECONDLY_ROLLING"
		}
		s.writeRateLimitLocked(w, policy, f.RetryAfter, isSearch)
		return
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	switch f.Status {
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>", f.Status, http.StatusText(f.Status))
	default:
		writeError(w, f.Status, "INTERNAL_ERROR", "internal error", nil)
	}
}

// limitLocked counts the request against the account's windows and returns
// the violated policy, or "".
func (s *Server) limitLocked(isSearch bool) string {
	now := s.opts.Now()
	l := s.opts.Limits
	day := now.UTC().Format("2006-01-02")
	if s.daily[day] >= l.Daily {
		return "DAILY"
	}
	if isSearch {
		s.searchSec = pruneBefore(s.searchSec, now.Add(-time.Second))
		if len(s.searchSec) >= l.Search {
			return "SECONDLY"
		}
		s.searchSec = append(s.searchSec, now)
	} else {
		s.tenSec = pruneBefore(s.tenSec, now.Add(-10*time.Second))
		if len(s.tenSec) >= l.TenSecond {
			return "TEN_SECONDLY_ROLLING"
		}
		s.tenSec = append(s.tenSec, now)
	}
	s.daily[day]++
	return ""
}

func pruneBefore(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	return ts[i:]
}

func (s *Server) rateHeadersLocked(h http.Header) {
	l := s.opts.Limits
	now := s.opts.Now()
	used10 := len(pruneBefore(s.tenSec, now.Add(-10*time.Second)))
	usedDay := s.daily[now.UTC().Format("2006-01-02")]
	h.Set("X-HubSpot-RateLimit-Daily", strconv.Itoa(l.Daily))
	h.Set("X-HubSpot-RateLimit-Daily-Remaining", strconv.Itoa(max(0, l.Daily-usedDay)))
	h.Set("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
	h.Set("X-HubSpot-RateLimit-Max", strconv.Itoa(l.TenSecond))
	h.Set("X-HubSpot-RateLimit-Remaining", strconv.Itoa(max(0, l.TenSecond-used10)))
	h.Set("X-HubSpot-RateLimit-Secondly", strconv.Itoa(l.TenSecond/10))
	h.Set("X-HubSpot-RateLimit-Secondly-Remaining", strconv.Itoa(max(0, l.TenSecond/10-used10/10)))
}

func (s *Server) writeRateLimitLocked(w http.ResponseWriter, policy string, retryAfter int, isSearch bool) {
	msg := map[string]string{
		"DAILY":                "You have reached your daily limit.",
		"SECONDLY":             "You have reached your secondly limit.",
		"TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
	}[policy]
	if !isSearch {
		s.rateHeadersLocked(w.Header())
		if policy == "TEN_SECONDLY_ROLLING" {
			w.Header().Set("X-HubSpot-RateLimit-Remaining", "0")
		}
		if policy == "DAILY" {
			w.Header().Set("X-HubSpot-RateLimit-Daily-Remaining", "0")
		}
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	writeJSON(w, http.StatusTooManyRequests, map[string]any{
		"status": "error", "message": msg, "errorType": "RATE_LIMIT", "correlationId": newUUID(),
		"policyName": policy, "requestId": newUUID(),
	})
}

func (s *Server) routeLocked(w http.ResponseWriter, r *http.Request, body []byte) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 3 || parts[0] != "crm" || parts[1] != "v3" {
		writeError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
		return
	}
	switch parts[2] {
	case "objects":
		if len(parts) < 4 || s.objects[parts[3]] == nil {
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Unable to infer object type from: "+strings.Join(parts[3:], "/"), nil)
			return
		}
		t := parts[3]
		switch {
		case len(parts) == 4 && r.Method == http.MethodPost:
			s.createLocked(w, t, body)
		case len(parts) == 4 && r.Method == http.MethodGet:
			var live []*Object
			for _, o := range s.sortedLocked(t) {
				if !o.Archived {
					live = append(live, o)
				}
			}
			props := splitProps(r.URL.Query()["properties"])
			page(w, r.URL.Query(), len(live), func(i int) any { return s.renderLocked(live[i], props, false) })
		case len(parts) == 5 && parts[4] == "search" && r.Method == http.MethodPost:
			s.searchLocked(w, t, body)
		case len(parts) == 5 && r.Method == http.MethodGet:
			s.getLocked(w, r, t, parts[4])
		case len(parts) == 5 && r.Method == http.MethodPatch:
			s.updateLocked(w, r, t, parts[4], body)
		case len(parts) == 5 && r.Method == http.MethodDelete:
			s.archiveLocked(w, t, parts[4])
		default:
			writeError(w, http.StatusMethodNotAllowed, "VALIDATION_ERROR", "method not allowed", nil)
		}
	case "properties":
		s.propertiesLocked(w, r, parts[3:], body)
	case "owners":
		s.ownersLocked(w, r, parts[3:])
	case "pipelines":
		s.pipelinesLocked(w, parts[3:])
	default:
		writeError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
	}
}

// ---------------------------------------------------------------- objects

type createBody struct {
	Properties   map[string]*string `json:"properties"`
	Associations []struct {
		To struct {
			ID string `json:"id"`
		} `json:"to"`
		Types []struct {
			Category string `json:"associationCategory"`
			TypeID   int    `json:"associationTypeId"`
		} `json:"types"`
	} `json:"associations"`
}

func (s *Server) createLocked(w http.ResponseWriter, t string, body []byte) {
	var in createBody
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+err.Error(), nil)
		return
	}
	props := flatten(in.Properties)
	if !s.validPropsLocked(w, t, props) {
		return
	}
	switch t {
	case "contacts":
		if props["email"] == "" && props["firstname"] == "" && props["lastname"] == "" {
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Property values were not valid: at least one of email, firstname or lastname is required", nil)
			return
		}
		if email := props["email"]; email != "" {
			if id := s.findByLocked(t, "email", email); id != "" {
				writeConflict(w, id, email)
				return
			}
		}
	case "notes", "tasks":
		if props["hs_timestamp"] == "" {
			writeInvalidProps(w, []propError{{Name: "hs_timestamp", Error: "REQUIRED_FIELD", Message: "hs_timestamp is required"}})
			return
		}
	}
	// Associations are validated before anything is stored, as HubSpot does.
	var links []Association
	for _, a := range in.Associations {
		for _, ty := range a.Types {
			to, ok := assocTable[t][ty.TypeID]
			if !ok || ty.Category != "HUBSPOT_DEFINED" {
				writeError(w, http.StatusBadRequest, "VALIDATION_ERROR",
					fmt.Sprintf("%d is not a valid association type id for %s (category %s)", ty.TypeID, t, ty.Category), nil)
				return
			}
			if o := s.objects[to][a.To.ID]; o == nil || o.Archived {
				writeError(w, http.StatusBadRequest, "VALIDATION_ERROR",
					fmt.Sprintf("No %s with id %s to associate with", strings.TrimSuffix(to, "s"), a.To.ID), nil)
				return
			}
			links = append(links, Association{FromType: t, ToType: to, ToID: a.To.ID, TypeID: ty.TypeID, Category: ty.Category})
		}
	}
	o := s.insertLocked(t, props)
	for _, l := range links {
		l.FromID = o.ID
		s.assocs = append(s.assocs, l)
	}
	writeJSON(w, http.StatusCreated, s.renderLocked(o, nil, true))
}

func (s *Server) insertLocked(t string, props map[string]string) *Object {
	s.nextID++
	now := s.opts.Now().UTC()
	o := &Object{Type: t, ID: strconv.FormatInt(s.nextID, 10), Properties: map[string]string{}, CreatedAt: now, UpdatedAt: now}
	for k, v := range props {
		if v != "" {
			o.Properties[k] = v
		}
	}
	s.objects[t][o.ID] = o
	return o
}

func (s *Server) lookupLocked(r *http.Request, t, id string) *Object {
	if idProp := r.URL.Query().Get("idProperty"); idProp != "" && idProp != "hs_object_id" {
		id = s.findByLocked(t, idProp, id)
	}
	o := s.objects[t][id]
	if o == nil || o.Archived {
		return nil
	}
	return o
}

func (s *Server) findByLocked(t, prop, value string) string {
	for _, o := range s.sortedLocked(t) {
		if !o.Archived && strings.EqualFold(o.Properties[prop], value) {
			return o.ID
		}
	}
	return ""
}

func (s *Server) getLocked(w http.ResponseWriter, r *http.Request, t, id string) {
	if idp := r.URL.Query().Get("idProperty"); idp != "" && idp != "hs_object_id" && !s.uniqueLocked(t, idp) {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("Property %s is not a unique identifier", idp), nil)
		return
	}
	o := s.lookupLocked(r, t, id)
	if o == nil {
		// HubSpot answers an unknown id with an empty 404 body.
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, s.renderLocked(o, splitProps(r.URL.Query()["properties"]), false))
}

func (s *Server) updateLocked(w http.ResponseWriter, r *http.Request, t, id string, body []byte) {
	var in createBody
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+err.Error(), nil)
		return
	}
	o := s.lookupLocked(r, t, id)
	if o == nil {
		writeError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
		return
	}
	props := flatten(in.Properties)
	if !s.validPropsLocked(w, t, props) {
		return
	}
	if email, ok := props["email"]; ok && t == "contacts" && email != "" {
		if other := s.findByLocked(t, "email", email); other != "" && other != o.ID {
			writeConflict(w, other, email)
			return
		}
	}
	for k, v := range props {
		if v == "" {
			delete(o.Properties, k) // "" clears a value
		} else {
			o.Properties[k] = v
		}
	}
	o.UpdatedAt = s.opts.Now().UTC()
	writeJSON(w, http.StatusOK, s.renderLocked(o, nil, true))
}

func (s *Server) archiveLocked(w http.ResponseWriter, t, id string) {
	if o := s.objects[t][id]; o != nil {
		o.Archived = true
	}
	w.WriteHeader(http.StatusNoContent)
}

func flatten(in map[string]*string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		if v != nil {
			out[k] = *v
		} else {
			out[k] = ""
		}
	}
	return out
}

type propError struct {
	IsValid bool   `json:"isValid"`
	Message string `json:"message"`
	Error   string `json:"error"`
	Name    string `json:"name"`
}

// validPropsLocked rejects unknown properties, read-only ones, owners that
// do not exist and deal stages outside their pipeline, with HubSpot's
// "Property values were not valid" body.
func (s *Server) validPropsLocked(w http.ResponseWriter, t string, props map[string]string) bool {
	var bad []propError
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := props[k]
		def, ok := s.props[t][k]
		switch {
		case !ok:
			bad = append(bad, propError{Name: k, Error: "PROPERTY_DOESNT_EXIST", Message: fmt.Sprintf("Property \"%s\" does not exist", k)})
		case readOnly[k]:
			bad = append(bad, propError{Name: k, Error: "READ_ONLY_VALUE", Message: fmt.Sprintf("%s is a read only property; its value cannot be set.", k)})
		case v == "":
		case def.Type == "datetime":
			if !validTimestamp(v) {
				bad = append(bad, propError{Name: k, Error: "INVALID_DATETIME", Message: fmt.Sprintf("%s was not a valid long or ISO-8601 datetime.", v)})
			}
		case def.Type == "number":
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				bad = append(bad, propError{Name: k, Error: "INVALID_FLOAT", Message: fmt.Sprintf("%s was not a valid number.", v)})
			}
		case k == "hubspot_owner_id":
			if !s.ownerExistsLocked(v) {
				bad = append(bad, propError{Name: k, Error: "INVALID_OWNER_ID", Message: fmt.Sprintf("%s is not a valid owner id", v)})
			}
		case def.Type == "enumeration" && len(def.options()) > 0:
			if !contains(def.options(), v) {
				bad = append(bad, propError{Name: k, Error: "INVALID_OPTION", Message: fmt.Sprintf("%s was not one of the allowed options: %s", v, strings.Join(def.options(), ", "))})
			}
		}
	}
	if t == "deals" {
		pipeline := props["pipeline"]
		if stage := props["dealstage"]; stage != "" {
			if pipeline == "" {
				pipeline = "default"
			}
			if stages, ok := s.pipelines[pipeline]; !ok || !contains(stages, stage) {
				bad = append(bad, propError{Name: "dealstage", Error: "INVALID_OPTION",
					Message: fmt.Sprintf("%s was not one of the allowed options for pipeline %s", stage, pipeline)})
			}
		}
	}
	if len(bad) > 0 {
		writeInvalidProps(w, bad)
		return false
	}
	return true
}

func (s *Server) ownerExistsLocked(id string) bool {
	for _, o := range s.owners {
		if o.ID == id && !o.Archived {
			return true
		}
	}
	return false
}

func (s *Server) uniqueLocked(t, prop string) bool {
	if t == "contacts" && prop == "email" {
		return true
	}
	return s.props[t][prop].HasUniqueValue
}

func (s *Server) sortedLocked(t string) []*Object {
	out := make([]*Object, 0, len(s.objects[t]))
	for _, o := range s.objects[t] {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return idLess(out[i].ID, out[j].ID) })
	return out
}

func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

var defaultRead = map[string][]string{
	"contacts":  {"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"},
	"deals":     {"amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate", "hs_object_id", "pipeline"},
	"notes":     {"hs_createdate", "hs_lastmodifieddate", "hs_object_id"},
	"tasks":     {"hs_createdate", "hs_lastmodifieddate", "hs_object_id"},
	"companies": {"createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"},
}

// renderLocked builds the wire object. Requested properties with no value
// come back as null, as HubSpot sends them; all=true renders every stored
// property (create and update responses).
func (s *Server) renderLocked(o *Object, requested []string, all bool) map[string]any {
	props := map[string]any{}
	system := s.systemPropsLocked(o)
	names := append(append([]string(nil), defaultRead[o.Type]...), requested...)
	if all {
		for k := range o.Properties {
			names = append(names, k)
		}
	}
	for _, n := range names {
		if v, ok := system[n]; ok {
			props[n] = v
		} else if v, ok := o.Properties[n]; ok {
			props[n] = v
		} else {
			props[n] = nil
		}
	}
	return map[string]any{"id": o.ID, "properties": props, "createdAt": o.CreatedAt.Format(tsLayout),
		"updatedAt": o.UpdatedAt.Format(tsLayout), "archived": o.Archived}
}

func (s *Server) systemPropsLocked(o *Object) map[string]string {
	c, u := o.CreatedAt.Format(tsLayout), o.UpdatedAt.Format(tsLayout)
	m := map[string]string{"hs_object_id": o.ID, "hs_createdate": c, "hs_lastmodifieddate": u}
	if o.Type == "contacts" {
		m["createdate"], m["lastmodifieddate"] = c, u
	} else {
		m["createdate"] = c
	}
	return m
}

func splitProps(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// ---------------------------------------------------------------- owners, pipelines

func (s *Server) ownersLocked(w http.ResponseWriter, r *http.Request, rest []string) {
	if len(rest) > 0 && rest[0] != "" {
		for _, o := range s.owners {
			if o.ID == rest[0] {
				writeJSON(w, http.StatusOK, renderOwner(o))
				return
			}
		}
		writeError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "Owner "+rest[0]+" not found", nil)
		return
	}
	q := r.URL.Query()
	email := q.Get("email")
	archived := q.Get("archived") == "true"
	var match []Owner
	for _, o := range s.owners {
		if o.Archived == archived && (email == "" || strings.EqualFold(o.Email, email)) {
			match = append(match, o)
		}
	}
	page(w, q, len(match), func(i int) any { return renderOwner(match[i]) })
}

func renderOwner(o Owner) map[string]any {
	return map[string]any{"id": o.ID, "email": o.Email, "type": "PERSON", "firstName": o.FirstName, "lastName": o.LastName,
		"userId": o.UserID, "userIdIncludingInactive": o.UserID, "createdAt": "2025-01-01T00:00:00.000Z",
		"updatedAt": "2025-01-01T00:00:00.000Z", "archived": o.Archived, "teams": []any{}}
}

// page writes a {results, paging} list from a limit/after query.
func page(w http.ResponseWriter, q url.Values, n int, item func(int) any) {
	limit, after := 100, 0
	if v, err := strconv.Atoi(q.Get("limit")); err == nil && v > 0 {
		limit = v
	}
	if v, err := strconv.Atoi(q.Get("after")); err == nil && v > 0 {
		after = v
	}
	res := []any{}
	for i := after; i < n && i < after+limit; i++ {
		res = append(res, item(i))
	}
	out := map[string]any{"results": res}
	if after+limit < n {
		out["paging"] = map[string]any{"next": map[string]any{"after": strconv.Itoa(after + limit)}}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) pipelinesLocked(w http.ResponseWriter, rest []string) {
	if len(rest) != 1 || rest[0] != "deals" {
		writeError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "resource not found", nil)
		return
	}
	ids := make([]string, 0, len(s.pipelines))
	for id := range s.pipelines {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var res []any
	for i, id := range ids {
		var stages []any
		for j, st := range s.pipelines[id] {
			stages = append(stages, map[string]any{"id": st, "label": st, "displayOrder": j, "archived": false})
		}
		res = append(res, map[string]any{"id": id, "label": id, "displayOrder": i, "archived": false, "stages": stages})
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": res})
}

// ---------------------------------------------------------------- wire helpers

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, category, msg string, extra map[string]any) {
	body := map[string]any{"status": "error", "message": msg, "correlationId": newUUID(), "category": category}
	for k, v := range extra {
		body[k] = v
	}
	writeJSON(w, status, body)
}

func writeInvalidProps(w http.ResponseWriter, bad []propError) {
	detail, _ := json.Marshal(bad)
	var errs []any
	for _, b := range bad {
		errs = append(errs, map[string]any{"message": b.Message, "code": b.Error,
			"context": map[string]any{"propertyName": []string{b.Name}}})
	}
	writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Property values were not valid: "+string(detail),
		map[string]any{"errors": errs})
}

func writeConflict(w http.ResponseWriter, existingID, email string) {
	writeError(w, http.StatusConflict, "OBJECT_ALREADY_EXISTS", "Contact already exists. Existing ID: "+existingID,
		map[string]any{"error": "CONTACT_EXISTS", "errors": []any{map[string]any{
			"message": fmt.Sprintf("A contact with email %s already exists. Existing ID: %s", email, existingID),
			"in":      "email"}}})
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func copyObject(o *Object) Object {
	c := *o
	c.Properties = make(map[string]string, len(o.Properties))
	for k, v := range o.Properties {
		c.Properties[k] = v
	}
	return c
}
