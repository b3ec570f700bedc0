package hsfake

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"time"
)

var readOnly = map[string]bool{"createdate": true, "lastmodifieddate": true, "hs_object_id": true,
	"hs_createdate": true, "hs_lastmodifieddate": true}

func opts(values ...string) []Option {
	out := make([]Option, len(values))
	for i, v := range values {
		out[i] = Option{Label: v, Value: v, DisplayOrder: i}
	}
	return out
}

// builtinProperties is the subset of HubSpot's default properties a client
// of this fake may touch; anything else must be created first.
func builtinProperties() map[string]map[string]Property {
	str := func(name, group string) Property {
		return Property{Name: name, Label: name, Type: "string", FieldType: "text", GroupName: group, FormField: true}
	}
	dt := func(name, group string) Property {
		return Property{Name: name, Label: name, Type: "datetime", FieldType: "date", GroupName: group}
	}
	num := func(name, group string) Property {
		return Property{Name: name, Label: name, Type: "number", FieldType: "number", GroupName: group}
	}
	owner := Property{Name: "hubspot_owner_id", Label: "Owner", Type: "enumeration", FieldType: "select", GroupName: "ownership"}
	m := map[string]map[string]Property{}
	add := func(t string, ps ...Property) {
		if m[t] == nil {
			m[t] = map[string]Property{}
		}
		for _, p := range ps {
			m[t][p.Name] = p
		}
	}
	add("contacts", str("email", "contactinformation"), str("firstname", "contactinformation"), str("lastname", "contactinformation"),
		str("phone", "contactinformation"), str("mobilephone", "contactinformation"), str("company", "contactinformation"),
		str("website", "contactinformation"), str("jobtitle", "contactinformation"), str("city", "contactinformation"),
		str("country", "contactinformation"), str("hs_language", "contactinformation"),
		Property{Name: "lifecyclestage", Label: "Lifecycle Stage", Type: "enumeration", FieldType: "radio", GroupName: "contactinformation",
			Options: opts("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "evangelist", "other")},
		Property{Name: "hs_lead_status", Label: "Lead Status", Type: "enumeration", FieldType: "radio", GroupName: "sales_properties",
			Options: opts("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING")},
		owner, dt("createdate", "contactinformation"), dt("lastmodifieddate", "contactinformation"), num("hs_object_id", "contactinformation"))
	add("deals", str("dealname", "dealinformation"), str("pipeline", "dealinformation"), str("dealstage", "dealinformation"),
		num("amount", "dealinformation"), dt("closedate", "dealinformation"), str("deal_currency_code", "dealinformation"),
		str("dealtype", "dealinformation"), str("description", "dealinformation"), owner,
		dt("createdate", "dealinformation"), dt("hs_lastmodifieddate", "dealinformation"), num("hs_object_id", "dealinformation"))
	add("notes", str("hs_note_body", "engagement"), dt("hs_timestamp", "engagement"), str("hs_attachment_ids", "engagement"), owner,
		dt("hs_createdate", "engagement"), dt("hs_lastmodifieddate", "engagement"), num("hs_object_id", "engagement"))
	add("tasks", str("hs_task_subject", "task"), str("hs_task_body", "task"), dt("hs_timestamp", "task"),
		Property{Name: "hs_task_status", Label: "Task Status", Type: "enumeration", FieldType: "select", GroupName: "task",
			Options: opts("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED")},
		Property{Name: "hs_task_priority", Label: "Priority", Type: "enumeration", FieldType: "select", GroupName: "task",
			Options: opts("NONE", "LOW", "MEDIUM", "HIGH")},
		Property{Name: "hs_task_type", Label: "Task Type", Type: "enumeration", FieldType: "select", GroupName: "task",
			Options: opts("EMAIL", "CALL", "TODO", "LINKED_IN")},
		str("hs_task_reminders", "task"), owner,
		dt("hs_createdate", "task"), dt("hs_lastmodifieddate", "task"), num("hs_object_id", "task"))
	add("companies", str("name", "companyinformation"), str("domain", "companyinformation"), owner,
		dt("createdate", "companyinformation"), dt("hs_lastmodifieddate", "companyinformation"), num("hs_object_id", "companyinformation"))
	return m
}

var epochMillis = regexp.MustCompile(`^\d{1,15}$`)

func validTimestamp(v string) bool {
	if epochMillis.MatchString(v) {
		return true
	}
	if _, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return true
	}
	_, err := time.Parse("2006-01-02", v)
	return err == nil
}

var propertyName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

var propertyTypes = map[string][]string{
	"string":      {"text", "textarea", "html", "phonenumber", "file"},
	"number":      {"number"},
	"datetime":    {"date"},
	"date":        {"date"},
	"enumeration": {"booleancheckbox", "checkbox", "radio", "select"},
	"bool":        {"booleancheckbox"},
}

func (s *Server) propertiesLocked(w http.ResponseWriter, r *http.Request, rest []string, body []byte) {
	if len(rest) == 0 || s.props[rest[0]] == nil {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Unable to infer object type", nil)
		return
	}
	t := rest[0]
	switch {
	case r.Method == http.MethodGet && len(rest) == 1:
		names := make([]string, 0, len(s.props[t]))
		for n := range s.props[t] {
			names = append(names, n)
		}
		sort.Strings(names)
		res := make([]any, len(names))
		for i, n := range names {
			res[i] = renderProperty(s.props[t][n])
		}
		writeJSON(w, http.StatusOK, map[string]any{"results": res})
	case r.Method == http.MethodGet && len(rest) == 2:
		p, ok := s.props[t][rest[1]]
		if !ok {
			writeError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", "Unable to find property "+rest[1]+" for object type "+t, nil)
			return
		}
		writeJSON(w, http.StatusOK, renderProperty(p))
	case r.Method == http.MethodPost && len(rest) == 1:
		var p Property
		if err := json.Unmarshal(body, &p); err != nil {
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+err.Error(), nil)
			return
		}
		fts, okType := propertyTypes[p.Type]
		switch {
		case !propertyName.MatchString(p.Name) || p.Label == "" || p.GroupName == "":
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "name, label, type, fieldType and groupName are required; name must be lowercase", nil)
			return
		case !okType || !contains(fts, p.FieldType):
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid type/fieldType combination: "+p.Type+"/"+p.FieldType, nil)
			return
		}
		if _, exists := s.props[t][p.Name]; exists {
			writeError(w, http.StatusConflict, "OBJECT_ALREADY_EXISTS", "Property already exists: "+p.Name, nil)
			return
		}
		p.Custom = true
		s.props[t][p.Name] = p
		writeJSON(w, http.StatusCreated, renderProperty(p))
	default:
		writeError(w, http.StatusMethodNotAllowed, "VALIDATION_ERROR", "method not allowed", nil)
	}
}

func renderProperty(p Property) map[string]any {
	options := p.Options
	if options == nil {
		options = []Option{}
	}
	return map[string]any{"name": p.Name, "label": p.Label, "type": p.Type, "fieldType": p.FieldType,
		"groupName": p.GroupName, "description": p.Description, "hasUniqueValue": p.HasUniqueValue,
		"hidden": p.Hidden, "formField": p.FormField, "options": options, "calculated": false,
		"externalOptions": false, "displayOrder": -1, "hubspotDefined": !p.Custom,
		"modificationMetadata": map[string]any{"archivable": p.Custom, "readOnlyDefinition": !p.Custom,
			"readOnlyValue": readOnly[p.Name]},
		"createdAt": "2025-01-01T00:00:00.000Z", "updatedAt": "2025-01-01T00:00:00.000Z"}
}
