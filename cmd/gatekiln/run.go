package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gatekiln/gatekiln/builder/quickstart"
)

func init() { subcommands = append(subcommands, newRunCmd()) }

func newRunCmd() *cobra.Command {
	var (
		o         quickstart.RunOptions
		reg       registryFlags
		accessLog bool
		logLevel  slog.Level
	)
	cmd := &cobra.Command{
		Use:   "run (FILE|DIR... | --image IMAGE|OCI-LAYOUT|BUNDLE.json) [--binding DIR] [--endpoint NAME=URL]... [--api-key SCHEME=KEY]...",
		Short: "Serve a definition, an image or a bundle.json with the gateway in this process",
		Long: `Run serves one API locally with the gateway in this process. The API is a
definition (compiled as gatekiln compile does) or, with --image, the Bundle of a
gateway image (a registry reference or an OCI layout, as for gatekiln inspect)
or a bundle.json file.

The Binding comes from --binding DIR (binding.json and the files it names, as
the operator mounts it; served as it is and reloaded when it changes) and/or
from flags: --endpoint NAME=URL for an endpoint's URL (repeat for several
URLs), --api-key SCHEME=KEY for an API key, --mock to answer every endpoint
without a URL, and every operation that names no endpoint, from the
definition's examples, --credentials to generate a credential for every
scheme without one. Flags win over the directory. Rate limits without a value
get a generous local limit. A Binding that lacks a value the Bundle needs is
reported, and the gateway answers 503 until it has it.`,
		Example: `  gatekiln run samples/petstore/petstore.yaml --mock --credentials
  gatekiln run samples/petstore/petstore.yaml --endpoint petstore-backend=http://127.0.0.1:9000 --api-key petstore-api-key=secret --credentials
  gatekiln run --image out/layout --binding ./binding`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := reg.config()
			if err != nil {
				return err
			}
			o.Files = args
			o.Registry = cfg
			o.Serve.Out = cmd.OutOrStdout()
			o.Serve.Err = cmd.ErrOrStderr()
			o.Serve.Logger = slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: logLevel}))
			if accessLog {
				o.Serve.AccessLog = os.Stderr
			}
			// Ctrl-C (or SIGTERM) stops the gateway, the mock and the registry cleanly.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// A second Ctrl-C does not wait for the drain.
			context.AfterFunc(ctx, stop)
			return quickstart.Run(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Image, "image", "", "serve this image's Bundle (registry reference, OCI layout, or bundle.json) instead of a definition")
	f.StringVar(&o.BindingDir, "binding", "", "directory holding binding.json and the files it names")
	f.StringArrayVar(&o.Endpoints, "endpoint", nil, "NAME=URL: where endpoint NAME lives (repeatable)")
	f.StringArrayVar(&o.APIKeys, "api-key", nil, "SCHEME=KEY: an API key the apiKey scheme SCHEME accepts (repeatable)")
	f.BoolVar(&o.Mock, "mock", false, "answer every endpoint without a URL, and every operation without an endpoint, from the definition's examples")
	f.BoolVar(&o.Credentials, "credentials", false, "generate a credential for every security scheme without one, and print it")
	f.StringVar(&o.Serve.Addr, "addr", quickstart.DefaultAddr, "gateway listen address (port 0 picks a free one)")
	f.StringVar(&o.Serve.AdminAddr, "admin-addr", "", "admin listen address for /metrics, /healthz, /readyz (default: none)")
	f.BoolVar(&accessLog, "access-log", false, "write a JSON access log line per request to stderr")
	f.TextVar(&logLevel, "log-level", slog.LevelWarn, "gateway log level on stderr: debug, info, warn, error")
	reg.add(f)
	return cmd
}
