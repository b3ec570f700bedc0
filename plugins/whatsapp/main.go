// Command whatsapp is the Switchboard channel plugin for the WhatsApp
// Business Cloud API. The hub starts it; run `whatsapp describe` to see its
// manifest and config schema.
package main

import (
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/whatsapp"
)

func main() { sdk.ServeChannel(whatsapp.New()) }
