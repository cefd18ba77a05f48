package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/gatekiln/gatekiln/builder/image"
)

func init() { subcommands = append(subcommands, newRuntimeImageCmd()) }

func newRuntimeImageCmd() *cobra.Command {
	var (
		reg                        registryFlags
		push, tag, caCerts, module string
		version, revision, srcURL  string
		platforms, binaries        []string
	)
	cmd := &cobra.Command{
		Use:   "runtime-image --push REPO",
		Short: "Build the gateway runtime base image (linux/amd64 + linux/arm64) and push it; print repo@sha256:…",
		Long: `Runtime-image builds the static gatekiln-gateway binary for each platform
(CGO off, -trimpath, from ./cmd/gatekiln-gateway of --module), lays it on an
empty base with the CA certificates and a non-root user (65532), and pushes the
multi-platform index. The same sources give the same digest. --binary
PLATFORM=PATH uses a prebuilt static binary instead of building one.

The last line of stdout is the image by digest, what gatekiln build --runtime
and the operator take.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := reg.config()
			if err != nil {
				return err
			}
			repo, err := cfg.ParseRepository(push)
			if err != nil {
				return fmt.Errorf("--push: %w", err)
			}
			bins, err := parseBinaries(binaries)
			if err != nil {
				return err
			}
			// Checked before building: a bad file should not cost a build.
			certs, err := os.ReadFile(caCerts)
			if err != nil {
				return fmt.Errorf("--ca-certs: %w", err)
			}
			if err := image.CheckCACerts(certs); err != nil {
				return fmt.Errorf("--ca-certs %s: %w", caCerts, err)
			}
			// Ctrl-C (or SIGTERM) cancels go build and the push, and the
			// deferred removal of the build directory still runs.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// A second Ctrl-C does not wait for the cleanup.
			context.AfterFunc(ctx, stop)
			if len(bins) == 0 {
				dir, err := os.MkdirTemp("", "gatekiln-runtime-")
				if err != nil {
					return err
				}
				defer func() { _ = os.RemoveAll(dir) }()
				if bins, err = buildGateway(ctx, cmd.ErrOrStderr(), module, platforms, dir); err != nil {
					return interrupted(ctx, err)
				}
			}
			idx, err := image.RuntimeBase(image.RuntimeOptions{Binaries: bins, CACerts: certs, Version: version, Revision: revision, Source: srcURL})
			if err != nil {
				return err
			}
			opts, err := cfg.Remote(ctx)
			if err != nil {
				return err
			}
			ref, err := image.RegistryPublisher{Options: opts}.Publish(ctx, idx, repo.Tag(tag))
			if err != nil {
				return interrupted(ctx, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&push, "push", "", "repository to push the runtime base image to")
	f.StringVar(&tag, "tag", "latest", "tag to push under (the image is used by digest)")
	f.StringVar(&module, "module", ".", "module root holding ./cmd/gatekiln-gateway")
	f.StringSliceVar(&platforms, "platform", []string{"linux/amd64", "linux/arm64"}, "platforms to build for")
	f.StringArrayVar(&binaries, "binary", nil, "PLATFORM=PATH of a prebuilt static gateway binary (repeatable; skips building)")
	f.StringVar(&caCerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to install in the image")
	f.StringVar(&version, "version", "", "org.opencontainers.image.version label")
	f.StringVar(&revision, "revision", "", "org.opencontainers.image.revision label")
	f.StringVar(&srcURL, "source", "", "org.opencontainers.image.source label")
	reg.add(f)
	_ = cmd.MarkFlagRequired("push")
	return cmd
}

func parseBinaries(specs []string) ([]image.Binary, error) {
	var out []image.Binary
	for _, s := range specs {
		plat, path, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("--binary %q: want PLATFORM=PATH", s)
		}
		p, err := v1.ParsePlatform(plat)
		if err != nil {
			return nil, fmt.Errorf("--binary %q: %w", s, err)
		}
		out = append(out, image.Binary{Platform: *p, Path: path})
	}
	return out, nil
}

// interrupted says so when err comes of Ctrl-C, rather than the go build or
// push error that the cancellation caused.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	return err
}

func buildGateway(ctx context.Context, log io.Writer, module string, platforms []string, dir string) ([]image.Binary, error) {
	if _, err := os.Stat(filepath.Join(module, "cmd", "gatekiln-gateway")); err != nil {
		return nil, fmt.Errorf("no ./cmd/gatekiln-gateway under %s to build (or pass --binary PLATFORM=PATH): %w", module, err)
	}
	var out []image.Binary
	for _, ps := range platforms {
		p, err := v1.ParsePlatform(ps)
		if err != nil {
			return nil, fmt.Errorf("--platform %q: %w", ps, err)
		}
		bin := filepath.Join(dir, "gatekiln-gateway-"+strings.ReplaceAll(p.String(), "/", "-"))
		fmt.Fprintf(log, "building gatekiln-gateway for %s\n", p)
		if err := image.BuildBinary(ctx, image.GoBuild{Dir: module, Package: "./cmd/gatekiln-gateway", Platform: *p, Out: bin}); err != nil {
			return nil, err
		}
		out = append(out, image.Binary{Platform: *p, Path: bin})
	}
	return out, nil
}
