package admin

import (
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-hub/switchboard/hub/assign"
)

func (api *API) listTeams(c *fiber.Ctx) error {
	as, err := api.assigner()
	if err != nil {
		return err
	}
	ts, err := as.Teams(c.UserContext())
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []assign.TeamState{}
	}
	return c.JSON(page[assign.TeamState]{Items: ts})
}

// teamDetail is a team with its members' load and its queue.
type teamDetail struct {
	assign.TeamState
	Agents []assign.AgentState `json:"agents"`
	Queue  []assign.Waiting    `json:"queue"`
}

func (api *API) getTeam(c *fiber.Ctx) error {
	as, err := api.assigner()
	if err != nil {
		return err
	}
	name := param(c, "name")
	ctx := c.UserContext()
	ts, err := as.Teams(ctx)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Name != name {
			continue
		}
		d := teamDetail{TeamState: t, Agents: []assign.AgentState{}}
		for _, m := range t.Members {
			a, err := as.Agent(ctx, m)
			if err != nil {
				return assignErr(err, "", m)
			}
			d.Agents = append(d.Agents, a)
		}
		if d.Queue, err = as.Queue(ctx, name); err != nil {
			return assignErr(err, "", name)
		}
		if d.Queue == nil {
			d.Queue = []assign.Waiting{}
		}
		return c.JSON(d)
	}
	return notFound("team", name)
}

func (api *API) teamQueue(c *fiber.Ctx) error {
	as, err := api.assigner()
	if err != nil {
		return err
	}
	name := param(c, "name")
	q, err := as.Queue(c.UserContext(), name)
	if err != nil {
		return assignErr(err, "", name)
	}
	if q == nil {
		q = []assign.Waiting{}
	}
	return c.JSON(page[assign.Waiting]{Items: q})
}

func (api *API) listAgents(c *fiber.Ctx) error {
	as, err := api.assigner()
	if err != nil {
		return err
	}
	ags, err := as.Agents(c.UserContext())
	if err != nil {
		return err
	}
	if ags == nil {
		ags = []assign.AgentState{}
	}
	return c.JSON(page[assign.AgentState]{Items: ags})
}

// ownAgent returns the agent of the path, which an agent key may only
// name when it is its own (another agent is "not found").
func ownAgent(c *fiber.Ctx) (string, error) {
	id := param(c, "id")
	if p := principal(c); p.Role == RoleAgent && p.Agent != id {
		return "", notFound("agent", id)
	}
	return id, nil
}

func (api *API) getAgent(c *fiber.Ctx) error {
	id, err := ownAgent(c)
	if err != nil {
		return err
	}
	as, err := api.assigner()
	if err != nil {
		return err
	}
	a, err := as.Agent(c.UserContext(), id)
	if err != nil {
		return assignErr(err, "", id)
	}
	return c.JSON(a)
}

type statusRequest struct {
	Status string `json:"status"`
}

func (api *API) setAgentStatus(c *fiber.Ctx) error {
	id, err := ownAgent(c)
	if err != nil {
		return err
	}
	as, err := api.assigner()
	if err != nil {
		return err
	}
	var req statusRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	st, err := assign.ParseStatus(req.Status)
	if err != nil {
		return invalid("status", "must be online, away or offline")
	}
	ctx := c.UserContext()
	if err := as.SetStatus(ctx, id, st); err != nil {
		return assignErr(err, "", id)
	}
	noteAudit(c, id, "status "+string(st))
	a, err := as.Agent(ctx, id)
	if err != nil {
		return assignErr(err, "", id)
	}
	return c.JSON(a)
}

type capacityRequest struct {
	Capacity *int `json:"capacity"`
}

func (api *API) setAgentCapacity(c *fiber.Ctx) error {
	var req capacityRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.Capacity == nil || *req.Capacity < 0 || *req.Capacity > 10000 {
		return invalid("capacity", "a whole number from 0 (no limit) to 10000 is required; DELETE the capacity to go back to the rules'")
	}
	return api.capacity(c, *req.Capacity)
}

func (api *API) resetAgentCapacity(c *fiber.Ctx) error { return api.capacity(c, -1) }

func (api *API) capacity(c *fiber.Ctx, n int) error {
	as, err := api.assigner()
	if err != nil {
		return err
	}
	id := param(c, "id")
	ctx := c.UserContext()
	if err := as.SetCapacity(ctx, id, n); err != nil {
		return assignErr(err, "", id)
	}
	if n < 0 {
		noteAudit(c, id, "capacity override removed")
	} else {
		noteAudit(c, id, fmt.Sprintf("capacity override %d", n))
	}
	a, err := as.Agent(ctx, id)
	if err != nil {
		return assignErr(err, "", id)
	}
	return c.Status(http.StatusOK).JSON(a)
}
