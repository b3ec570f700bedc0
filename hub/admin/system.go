package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-hub/switchboard/hub/config"
	"github.com/switchboard-hub/switchboard/hub/pluginhost"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/hub/version"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func (api *API) openapi(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "application/json")
	return c.Send(OpenAPI)
}

func (api *API) me(c *fiber.Ctx) error { return c.JSON(principal(c)) }

// health is the readiness report (the store and each plugin), 503 when
// something is down.
func (api *API) health(c *fiber.Ctx) error {
	rep := api.app.Readiness(c.UserContext())
	if !rep.Ready {
		return c.Status(http.StatusServiceUnavailable).JSON(rep)
	}
	return c.JSON(rep)
}

func (api *API) version(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"version": version.Version, "protocol_version": sdk.ProtocolVersion})
}

// ---------------------------------------------------------------- keys

type createKeyRequest struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Agent string `json:"agent,omitempty"`
	// ExpiresIn is a duration such as "720h" or "30d"; empty: never.
	ExpiresIn string `json:"expires_in,omitempty"`
}

// createdKey is the one answer that shows the key.
type createdKey struct {
	Key
	Secret string `json:"key"`
}

func (api *API) createKey(c *fiber.Ctx) error {
	var req createKeyRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	n := NewKey{Name: req.Name, Role: Role(req.Role), Agent: req.Agent, CreatedBy: principal(c).KeyID}
	if req.ExpiresIn != "" {
		d, err := config.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			return invalid("expires_in", "must be a positive duration such as 720h or 30d")
		}
		n.ExpiresIn = d
	}
	full, k, err := CreateKey(c.UserContext(), api.st, n, api.now())
	if err != nil {
		return err
	}
	noteAudit(c, k.ID, "role "+string(k.Role)+", name "+k.Name)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(http.StatusCreated).JSON(createdKey{Key: k.Public(), Secret: full})
}

func (api *API) listKeys(c *fiber.Ctx) error {
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	keys, next, err := ListKeys(c.UserContext(), api.st, cursor, limit)
	if err != nil {
		return cursorErr(err)
	}
	return c.JSON(page[Key]{Items: keys, NextCursor: encodeCursor(next)})
}

func (api *API) getKey(c *fiber.Ctx) error {
	id := param(c, "id")
	k, _, err := GetKey(c.UserContext(), api.st, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("key", id)
	}
	if err != nil {
		return err
	}
	return c.JSON(k.Public())
}

func (api *API) revokeKey(c *fiber.Ctx) error {
	id := param(c, "id")
	if id == BootstrapID {
		return errProblem(http.StatusConflict, PConflict, "The bootstrap key comes from the environment: unset the variable and restart to revoke it.")
	}
	k, err := RevokeKey(c.UserContext(), api.st, id, principal(c).KeyID, api.now())
	if errors.Is(err, store.ErrNotFound) {
		return notFound("key", id)
	}
	if err != nil {
		return err
	}
	return c.JSON(k)
}

// ---------------------------------------------------------------- plugins

// pluginView is a plugin's status with its uptime.
type pluginView struct {
	pluginhost.Status
	UptimeSeconds float64 `json:"uptime_seconds,omitempty"`
}

func (api *API) view(s pluginhost.Status) pluginView {
	v := pluginView{Status: s}
	if s.State == pluginhost.StateRunning && !s.Since.IsZero() {
		v.UptimeSeconds = api.now().Sub(s.Since).Round(time.Second).Seconds()
	}
	return v
}

func (api *API) listPlugins(c *fiber.Ctx) error {
	out := []pluginView{}
	for _, s := range api.app.Plugins.Statuses() {
		out = append(out, api.view(s))
	}
	return c.JSON(page[pluginView]{Items: out})
}

func (api *API) getPlugin(c *fiber.Ctx) error {
	name := param(c, "name")
	i := api.app.Plugins.Get(name)
	if i == nil {
		return notFound("plugin", name)
	}
	return c.JSON(api.view(i.Status()))
}

func (api *API) restartPlugin(c *fiber.Ctx) error {
	name := param(c, "name")
	if api.app.Plugins.Get(name) == nil {
		return notFound("plugin", name)
	}
	if err := api.app.Plugins.Restart(name); err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(api.view(api.app.Plugins.Get(name).Status()))
}
