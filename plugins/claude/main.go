// Command claude is Switchboard's LLM plugin for Anthropic's Claude. The hub
// starts it; run `claude describe` to see its manifest and config schema.
package main

import (
	"github.com/switchboard-hub/switchboard/plugins/claude/claude"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func main() { sdk.ServeLLM(claude.New()) }
