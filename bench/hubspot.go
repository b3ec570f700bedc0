package main

import "github.com/switchboard-hub/switchboard/plugins/hubspot/hsfake"

func newHubSpotFake() *hsfake.Server { return hsfake.New(hsfake.Options{}) }
