package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// deadView is a dead letter as the API shows it: the queued task decoded
// when it is JSON (it always is, unless it was corrupt: then base64).
type deadView struct {
	ID        string          `json:"id"`
	At        time.Time       `json:"at"`
	Error     string          `json:"error"`
	Attempts  int             `json:"attempts"`
	Conv      string          `json:"conv,omitempty"`
	Kind      string          `json:"kind,omitempty"`
	Partition int             `json:"partition"`
	Enqueued  time.Time       `json:"enqueued_at,omitzero"`
	Task      json.RawMessage `json:"task,omitempty"`
	Payload   []byte          `json:"payload,omitempty"` // only when not JSON
}

func viewDead(d store.DeadLetter, full bool) deadView {
	v := deadView{ID: d.ID, At: d.At, Error: d.Error, Attempts: d.Attempts, Partition: d.Entry.Partition, Enqueued: d.Entry.EnqueuedAt, Conv: d.Entry.Key}
	var head struct {
		Kind string `json:"kind"`
		Conv string `json:"conv"`
	}
	if json.Valid(d.Entry.Payload) {
		_ = json.Unmarshal(d.Entry.Payload, &head)
		v.Kind = head.Kind
		if head.Conv != "" {
			v.Conv = head.Conv
		}
		if full {
			v.Task = json.RawMessage(d.Entry.Payload)
		}
	} else if full {
		v.Payload = d.Entry.Payload
	}
	return v
}

func (api *API) listDead(c *fiber.Ctx) error {
	limit, cursor, err := pageParams(c)
	if err != nil {
		return err
	}
	ds, next, err := api.st.ListDead(c.UserContext(), cursor, limit)
	if err != nil {
		return cursorErr(err)
	}
	out := page[deadView]{Items: make([]deadView, 0, len(ds)), NextCursor: encodeCursor(next)}
	for _, d := range ds {
		out.Items = append(out.Items, viewDead(d, false))
	}
	return c.JSON(out)
}

func (api *API) dead(c *fiber.Ctx) (store.DeadLetter, error) {
	id := param(c, "id")
	d, err := api.st.GetDead(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) {
		return d, notFound("dead letter", id)
	}
	return d, err
}

func (api *API) getDead(c *fiber.Ctx) error {
	d, err := api.dead(c)
	if err != nil {
		return err
	}
	return c.JSON(viewDead(d, true))
}

// replayDead puts the task back on the queue (as a replay, past the
// dedupe of event ids) and removes the dead letter.
func (api *API) replayDead(c *fiber.Ctx) error {
	d, err := api.dead(c)
	if err != nil {
		return err
	}
	if err := api.app.Pipeline.Replay(c.UserContext(), d.ID); err != nil {
		if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNotFound) {
			return err
		}
		return errProblem(http.StatusConflict, PConflict, "%v", err)
	}
	v := viewDead(d, false)
	noteAudit(c, d.ID, "replayed "+v.Kind+" task of "+v.Conv)
	return c.Status(http.StatusAccepted).JSON(fiber.Map{"replayed": d.ID, "conv": v.Conv})
}

func (api *API) discardDead(c *fiber.Ctx) error {
	d, err := api.dead(c)
	if err != nil {
		return err
	}
	if err := api.st.DeleteDead(c.UserContext(), d.ID); err != nil {
		return err
	}
	v := viewDead(d, false)
	noteAudit(c, d.ID, "discarded "+v.Kind+" task of "+v.Conv+": "+d.Error)
	return c.SendStatus(http.StatusNoContent)
}
