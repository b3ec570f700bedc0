// Command testllm is the llm test plugin as a binary, for tests that run plugins
// as real subprocesses.
package main

import (
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

func main() { sdk.ServeLLM(testplugins.NewLLM()) }
