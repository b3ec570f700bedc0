package main

import (
	"io"

	"github.com/switchboard-hub/switchboard/rules/rulescli"
)

func init() {
	extraCommands = append(extraCommands, command{"rules", "rules check|test|explain DIR", "validate, test and explain routing rules",
		func(args []string, stdout, stderr io.Writer) int { return rulescli.Main(args, stdout, stderr) }})
}
