// Command gatekiln is the local CLI: compile, build, run, promote and inspect
// API gateways without a cluster. Each subcommand lives in its own file, parses
// its flags and calls a package; none holds logic of its own.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// subcommands are added by the other files of this package in init.
var subcommands []*cobra.Command

func main() {
	root := &cobra.Command{
		Use:           "gatekiln",
		Short:         "Compile API definitions into gateway images, locally",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(subcommands...)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gatekiln:", err)
		os.Exit(exitCode(err))
	}
}

// exitCoder lets a subcommand choose its exit status (1 for bad input is the default).
type exitCoder interface{ ExitCode() int }

func exitCode(err error) int {
	if ec, ok := err.(exitCoder); ok {
		return ec.ExitCode()
	}
	return 1
}
