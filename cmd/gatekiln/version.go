package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gatekiln/gatekiln/builder/buildinfo"
)

func init() { subcommands = append(subcommands, newVersionCmd()) }

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version [-o json]",
		Short: "Print the gatekiln version, the compiler version and the Bundle/Binding schemas",
		Long: `Version prints the module version and VCS revision this binary was built from,
the compiler version (part of every inputs digest: two CLIs with the same
compiler version name the same image for the same definition) and the Bundle
and Binding schema versions it writes and reads.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Read()
			switch output {
			case "":
				return info.Write(cmd.OutOrStdout())
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			return fmt.Errorf("-o %q: want json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json for a machine-readable answer")
	return cmd
}
