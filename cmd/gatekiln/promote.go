package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gatekiln/gatekiln/builder/promote"
)

func init() { subcommands = append(subcommands, newPromoteCmd()) }

// Exit statuses of promote, so a CI job can tell why it failed.
const (
	exitPromoteAuth     = 3
	exitPromoteMissing  = 4
	exitPromoteMismatch = 5
)

type exitError struct {
	err  error
	code int
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

func newPromoteCmd() *cobra.Command {
	var (
		reg          registryFlags
		dryRun       bool
		skipAttached bool
	)
	cmd := &cobra.Command{
		Use:   "promote SRC DST [--dry-run] [--skip-attached]",
		Short: "Copy an image, every platform, by digest between registries; print DST@sha256:…",
		Long: `Promote copies SRC (repo:tag or repo@sha256:…) to DST (a repository, or
repository:tag) without changing a byte: the destination gets the same digest
or the command fails. Blobs the destination already has are not sent again
(within one registry they are mounted from the source repository), so running
it twice uploads nothing the second time. DST without a tag takes SRC's tag.

What is attached to the image's digest, and to each platform's, goes with it
unless --skip-attached: cosign signatures, attestations and SBOMs (the tags
sha256-<hex>.sig, .att and .sbom in SRC's repository) and OCI referrers
(manifests whose subject is the image, listed by the referrers API or, on
registries without it, the tag sha256-<hex>, which promote keeps up to date
in DST), and what is attached to those in turn (a signed SBOM). They keep
their digests, so signatures stay valid. One "attached:" line is printed per
artifact copied; if one fails, the command fails naming it, and the image
itself may already be in DST.

Credentials for both registries come from one docker config (--docker-config,
or the default keychain); --registry-ca and --insecure-registry apply to both.

Exit status: 0 promoted (or already there), 3 a registry refused the
credentials, 4 SRC does not exist, 5 the destination's digest differs, 1 any
other failure. The last line of stdout is DST@sha256:….`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := reg.config()
			if err != nil {
				return err
			}
			src, err := cfg.ParseReference(args[0])
			if err != nil {
				return err
			}
			dstRepo, tag, err := promote.ParseDestination(args[1], cfg.ParseReference)
			if err != nil {
				return err
			}
			opts, err := cfg.Remote(cmd.Context())
			if err != nil {
				return err
			}
			res, err := promote.Promote(cmd.Context(), promote.Request{
				Source: src, Destination: dstRepo, Tag: tag,
				SourceOptions: opts, DestinationOptions: opts, DryRun: dryRun,
				SkipAttached: skipAttached,
			})
			if err != nil {
				return withExitCode(err)
			}
			out := cmd.OutOrStdout()
			verb := "promoted"
			switch {
			case dryRun:
				verb = "would promote"
			case res.AlreadyPresent && !res.TagUpdated:
				verb = "already present"
			}
			fmt.Fprintf(out, "%s %s -> %s\n", verb, res.Source, res.Destination)
			if len(res.Platforms) > 0 {
				fmt.Fprintf(out, "platforms: %s\n", strings.Join(res.Platforms, ", "))
			}
			if res.AlreadyPresent {
				fmt.Fprintf(out, "blobs: %d, all present\n", res.Blobs)
			} else {
				fmt.Fprintf(out, "blobs: %d, %d missing at the destination\n", res.Blobs, res.Missing)
			}
			if res.Tag != "" {
				state := "unchanged"
				if res.TagUpdated {
					state = "written"
					if dryRun {
						state = "would be written"
					}
				}
				fmt.Fprintf(out, "tag: %s (%s)\n", res.Tag, state)
			}
			for _, a := range res.Attached {
				state := "copied"
				if dryRun {
					state = "would be copied"
				}
				fmt.Fprintf(out, "attached: %s (%s)\n", a, state)
			}
			fmt.Fprintln(out, res.Destination)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be copied; write nothing")
	cmd.Flags().BoolVar(&skipAttached, "skip-attached", false, "copy the image alone, without the signatures, attestations, SBOMs and referrers attached to it")
	reg.add(cmd.Flags())
	return cmd
}

func withExitCode(err error) error {
	switch {
	case errors.Is(err, promote.ErrAuth):
		return &exitError{err: err, code: exitPromoteAuth}
	case errors.Is(err, promote.ErrNotFound):
		return &exitError{err: err, code: exitPromoteMissing}
	case errors.Is(err, promote.ErrMismatch):
		return &exitError{err: err, code: exitPromoteMismatch}
	}
	return err
}
