package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// lead is a scored conversation with its speed-to-lead.
type lead struct {
	convSummary
	Facts json.RawMessage `json:"facts,omitempty"`
	// FirstResponseAt is the first agent response after the handoff (from
	// the assignment service).
	FirstResponseAt time.Time `json:"first_response_at,omitzero"`
	// SpeedToLeadSeconds: from the customer's first message to the first
	// agent response. FirstResponseSeconds: from the handoff to it.
	SpeedToLeadSeconds   *float64 `json:"speed_to_lead_seconds,omitempty"`
	FirstResponseSeconds *float64 `json:"first_response_seconds,omitempty"`
	// WaitingSeconds: handed off and no agent has answered yet.
	WaitingSeconds *float64 `json:"waiting_seconds,omitempty"`
}

type leadsResponse struct {
	Items      []lead         `json:"items"`
	NextCursor string         `json:"next_cursor"`
	ByTier     map[string]int `json:"by_tier"`
	Total      int            `json:"total"`
	// AvgSpeedToLeadSeconds over the leads of this page that got a response.
	AvgSpeedToLeadSeconds *float64 `json:"avg_speed_to_lead_seconds,omitempty"`
	Truncated             bool     `json:"truncated,omitempty"`
}

func secs(d time.Duration) *float64 {
	s := d.Seconds()
	return &s
}

// listLeads is GET /leads?tier=&min_score=&sort=score|recent: scored
// conversations, best first. Sorting needs them all, so it scans (bounded)
// and pages by offset.
func (api *API) listLeads(c *fiber.Ctx) error {
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	offset := 0
	if cursor != "" {
		n, ok := strings.CutPrefix(cursor, "o:")
		if v, err := strconv.Atoi(n); ok && err == nil && v >= 0 {
			offset = v
		} else {
			return invalid("cursor", "not a cursor this API returned")
		}
	}
	tier := c.Query("tier")
	minScore := 0
	if s := c.Query("min_score"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 100 {
			return invalid("min_score", "must be a whole number from 0 to 100")
		}
		minScore = n
	}
	sortBy := c.Query("sort", "score")
	if sortBy != "score" && sortBy != "recent" {
		return invalid("sort", "must be score or recent")
	}
	ctx := c.UserContext()
	var all []*pipeline.Conversation
	byTier := map[string]int{}
	next, scanned, truncated := "", 0, false
	for {
		items, n, err := api.st.List(ctx, pipeline.NSConversations, "", next, 500)
		if err != nil {
			return err
		}
		for _, it := range items {
			var cv pipeline.Conversation
			if json.Unmarshal(it.Value, &cv) != nil || cv.Tier == "" {
				continue
			}
			byTier[cv.Tier]++
			if (tier == "" || cv.Tier == tier) && cv.Score >= minScore {
				all = append(all, &cv)
			}
		}
		scanned += len(items)
		if n == "" {
			break
		}
		if scanned >= whatIfScanCap {
			truncated = true
			break
		}
		next = n
	}
	slices.SortFunc(all, func(a, b *pipeline.Conversation) int {
		if sortBy == "score" {
			if d := cmp.Compare(b.Score, a.Score); d != 0 {
				return d
			}
		}
		return cmp.Or(b.LastCustomerAt.Compare(a.LastCustomerAt), strings.Compare(a.ID, b.ID))
	})
	resp := leadsResponse{Items: []lead{}, ByTier: byTier, Total: len(all), Truncated: truncated}
	if offset < len(all) {
		end := min(offset+limit, len(all))
		var sum float64
		var n int
		for _, cv := range all[offset:end] {
			l := lead{convSummary: summarize(cv)}
			l.Facts, _ = json.Marshal(cv.Facts)
			rec, err := api.record(ctx, cv.ID)
			if err != nil {
				return err
			}
			switch {
			case rec != nil && !rec.FirstResponseAt.IsZero():
				l.FirstResponseAt = rec.FirstResponseAt
				l.SpeedToLeadSeconds = secs(rec.FirstResponseAt.Sub(cv.FirstSeen))
				if rec.FirstResponse > 0 {
					l.FirstResponseSeconds = secs(rec.FirstResponse)
				} else if !cv.HandedOffAt.IsZero() {
					l.FirstResponseSeconds = secs(rec.FirstResponseAt.Sub(cv.HandedOffAt))
				}
				sum += *l.SpeedToLeadSeconds
				n++
			case !cv.LastAgentAt.IsZero():
				// No assignment record: the trail says when a person first spoke.
				at, err := api.firstAgentResponse(ctx, cv.ID)
				if err != nil {
					return err
				}
				if !at.IsZero() {
					l.FirstResponseAt = at
					l.SpeedToLeadSeconds = secs(at.Sub(cv.FirstSeen))
					if !cv.HandedOffAt.IsZero() && at.After(cv.HandedOffAt) {
						l.FirstResponseSeconds = secs(at.Sub(cv.HandedOffAt))
					}
					sum += *l.SpeedToLeadSeconds
					n++
				}
			case cv.State == pipeline.StateHandedOff && !cv.HandedOffAt.IsZero():
				l.WaitingSeconds = secs(api.now().Sub(cv.HandedOffAt))
			}
			resp.Items = append(resp.Items, l)
		}
		if n > 0 {
			avg := sum / float64(n)
			resp.AvgSpeedToLeadSeconds = &avg
		}
		if end < len(all) {
			resp.NextCursor = encodeCursor("o:" + strconv.Itoa(end))
		}
	}
	return c.JSON(resp)
}

// firstAgentResponse finds the first agent message in a conversation's
// trail: one sent through this API, or the switch to human that an agent's
// message on the channel causes. Zero when none is found in the first
// thousand records.
func (api *API) firstAgentResponse(ctx context.Context, conv string) (time.Time, error) {
	after := ""
	for range 5 {
		recs, next, err := api.st.Range(ctx, pipeline.ConvAuditLog(conv), store.LogRange{After: after, Limit: 200})
		if err != nil {
			return time.Time{}, err
		}
		for _, r := range recs {
			var a pipeline.AuditRecord
			if json.Unmarshal(r.Data, &a) != nil {
				continue
			}
			if a.Kind == "agent_message" || a.Kind == "first_response" || (a.Kind == "state" && strings.Contains(a.Detail, "agent message")) {
				return a.At, nil
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	return time.Time{}, nil
}
