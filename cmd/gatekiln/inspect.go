package main

import (
	"github.com/spf13/cobra"

	"github.com/gatekiln/gatekiln/builder/inspect"
)

func init() { subcommands = append(subcommands, newInspectCmd()) }

func newInspectCmd() *cobra.Command {
	var reg registryFlags
	cmd := &cobra.Command{
		Use:   "inspect IMAGE|OCI-LAYOUT[:TAG|@DIGEST]|BUNDLE.json",
		Short: "Show a gateway image's API, routes and policies as tables",
		Long: `Inspect reads the Bundle out of a gateway image — from a registry, from an OCI
image layout directory (DIR, DIR:TAG or DIR@sha256:…), or a bundle.json file
— and prints the API, every route with its endpoint, security requirements
(alternatives separated by "|", schemes required together joined by "+"),
rate-limit policies, validation and timeout, then the security schemes,
endpoints and rate-limit policies the routes name. For an image it also shows
the inputs digest and runtime base from the image's labels.`,
		Example: `  gatekiln inspect registry.example.com/apis/petstore:1.0.0-0123456789ab
  gatekiln inspect --insecure-registry 127.0.0.1:5000 127.0.0.1:5000/apis/petstore@sha256:…
  gatekiln inspect out/layout:1.0.0-0123456789ab
  gatekiln inspect out/bundle.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := reg.config()
			if err != nil {
				return err
			}
			l, err := inspect.Load(cmd.Context(), args[0], cfg)
			if err != nil {
				return err
			}
			return inspect.Table(cmd.OutOrStdout(), l)
		},
	}
	reg.add(cmd.Flags())
	return cmd
}
