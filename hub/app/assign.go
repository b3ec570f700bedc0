package app

import (
	"fmt"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
)

// installAssign builds the assigner from the rules and the handoff config
// and installs it on the pipeline: handoffs get assigned, SLA deadlines
// and follow-ups run on the pipeline's timers. Without rules there are no
// teams, and nothing to install.
func (a *App) installAssign() error {
	if a.Rules == nil {
		return nil
	}
	h := a.Config.Handoff
	d := &assign.Dispatcher{Channel: a.notifyChannel, WebhookURL: h.WebhookURL, WebhookSecret: h.WebhookSecret}
	as, err := assign.New(assign.Options{Store: a.Store, Rules: a.Rules.Current, Pipeline: a.Pipeline, Notifier: d,
		Logger: a.Log.With("component", "assign"), Registerer: a.Registry,
		DefaultStatus: assign.Status(h.DefaultStatus), ReleaseAfter: h.ReleaseAfter.D()})
	if err != nil {
		return err
	}
	if err := as.Install(); err != nil {
		return fmt.Errorf("assign: %w", err)
	}
	a.Assign = as
	return nil
}

// notifyChannel finds the channel plugin instance that sends notifications
// on channel ("zalo"): the one handoff.notify_channels names, otherwise the
// first configured instance whose plugin is that channel (by its manifest,
// or by its instance name before the plugin has started).
func (a *App) notifyChannel(channel string) (pipeline.ChannelPlugin, bool) {
	if inst, ok := a.Config.Handoff.NotifyChannels[channel]; ok {
		c, ok := a.Plugins.Channel(inst)
		return c, ok
	}
	names := map[string]string{}
	for _, s := range a.Plugins.Statuses() {
		names[s.Name] = s.Manifest.Name
	}
	for _, p := range a.Config.Plugins {
		if p.Kind != "channel" {
			continue
		}
		if names[p.Name] == channel || names[p.Name] == "" && p.Name == channel {
			c, ok := a.Plugins.Channel(p.Name)
			return c, ok
		}
	}
	return nil, false
}
