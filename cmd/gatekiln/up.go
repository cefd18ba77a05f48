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

func init() { subcommands = append(subcommands, newUpCmd()) }

func newUpCmd() *cobra.Command {
	var (
		o         quickstart.UpOptions
		accessLog bool
		logLevel  slog.Level
	)
	cmd := &cobra.Command{
		Use:   "up FILE|DIR...",
		Short: "Try an API on this machine: build its gateway image and serve it in front of a mock backend",
		Long: `Up needs no cluster, registry or backend. It compiles the definition (as
gatekiln compile does), builds the gateway image with the Direct builder into a
registry this process serves on 127.0.0.1, reads the Bundle back out of that
image and serves it with the gateway in this process, in front of a mock
upstream that answers every operation from the definition's examples (or from
its schemas when it has none). Every security scheme gets a credential (an API
key, a password, a signed JWT with the scopes the routes ask for) and every
rate-limit policy a generous local limit. It prints the URL, a curl command
that works and one that the gateway refuses without credentials. Ctrl-C stops
everything.

The image's runtime base is an empty image unless --gateway-binary names a
static gatekiln-gateway binary: the gateway runs in this process, so the image
only has to carry the Bundle, and up needs no network and no Go toolchain.
With --gateway-binary (CGO_ENABLED=0 go build ./cmd/gatekiln-gateway) the base
is the real runtime base, and the image also runs in a cluster.`,
		Example: `  go run ./cmd/gatekiln up samples/petstore/petstore.yaml
  gatekiln up --addr 127.0.0.1:0 api/openapi.yaml api/schemas/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Files = args
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
			return quickstart.Up(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Serve.Addr, "addr", quickstart.DefaultAddr, "gateway listen address (port 0 picks a free one)")
	f.StringVar(&o.Serve.AdminAddr, "admin-addr", "", "admin listen address for /metrics, /healthz, /readyz (default: none)")
	f.StringVar(&o.GatewayBinary, "gateway-binary", "", "static linux gatekiln-gateway binary: build the image on the real runtime base")
	f.BoolVar(&accessLog, "access-log", false, "write a JSON access log line per request to stderr")
	f.TextVar(&logLevel, "log-level", slog.LevelWarn, "gateway log level on stderr: debug, info, warn, error")
	return cmd
}
