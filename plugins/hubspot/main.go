// Command hubspot is Switchboard's HubSpot CRM plugin. The hub starts it;
// run `hubspot describe` to see its manifest and config schema.
package main

import (
	"github.com/switchboard-hub/switchboard/plugins/hubspot/hubspot"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func main() { sdk.ServeCRM(hubspot.New()) }
