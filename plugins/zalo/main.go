// Command zalo is Switchboard's Zalo Official Account channel plugin. The
// hub starts it; run `zalo describe` to see its manifest.
package main

import (
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalo"
)

func main() { sdk.ServeChannel(zalo.New()) }
