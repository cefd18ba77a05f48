package main

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/builder/source"
)

func init() { subcommands = append(subcommands, newBuildCmd()) }

// registryFlags are the flags every command that talks to a registry takes.
type registryFlags struct {
	dockerConfig string
	caFile       string
	insecure     []string
}

func (f *registryFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.dockerConfig, "docker-config", "", "docker config.json with registry credentials (default: the default keychain, ~/.docker/config.json or $DOCKER_CONFIG)")
	fs.StringVar(&f.caFile, "registry-ca", "", "PEM file of CA certificates trusted for registries, in addition to the system's")
	fs.StringSliceVar(&f.insecure, "insecure-registry", nil, "registry host[:port] reached over plain HTTP (repeatable); all others are HTTPS only")
}

func (f *registryFlags) config() (registry.Config, error) {
	c := registry.Config{Insecure: f.insecure, UserAgent: "gatekiln"}
	var err error
	if f.dockerConfig != "" {
		if c.DockerConfig, err = os.ReadFile(f.dockerConfig); err != nil {
			return c, fmt.Errorf("docker config: %w", err)
		}
	}
	if f.caFile != "" {
		if c.CABundle, err = os.ReadFile(f.caFile); err != nil {
			return c, fmt.Errorf("registry CA: %w", err)
		}
	}
	return c, nil
}

func newBuildCmd() *cobra.Command {
	var (
		reg                         registryFlags
		runtimeRef, repo, ociLayout string
		apiName, version            string
		force                       bool
	)
	cmd := &cobra.Command{
		Use:   "build --runtime REPO@sha256:… (--repo REPO | --oci-layout DIR) FILE|DIR...",
		Short: "Compile a definition and build its gateway image directly (no Kaniko); print repo@sha256:…",
		Long: `Build compiles the API definition (the first argument is the root document,
as for gatekiln compile), appends its Bundle to the runtime base image as one
reproducible layer, for every platform of the base, and publishes the image as
<repo>:<version>-<inputs digest[:12]>.

With --repo, the registry is asked first: when the tag already holds an image
of the same inputs it is reused and nothing is built (--force builds anyway);
when it holds an image of other inputs the build fails naming both digests.
With --oci-layout the image is written into an OCI image layout directory.

The last line of stdout is the image by digest.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (repo == "") == (ociLayout == "") {
				return fmt.Errorf("give exactly one of --repo and --oci-layout")
			}
			cfg, err := reg.config()
			if err != nil {
				return err
			}
			baseRef, err := cfg.ParseReference(runtimeRef)
			if err != nil {
				return fmt.Errorf("--runtime: %w", err)
			}
			base, ok := baseRef.(name.Digest)
			if !ok {
				return fmt.Errorf("--runtime %s: give the runtime base image by digest (repo@sha256:…)", runtimeRef)
			}
			files, err := source.Read(args...)
			if err != nil {
				return err
			}
			res, err := compile.Compile(compile.Input{Files: files, Version: version})
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w.Error())
			}
			req := image.Request{
				Bundle:       res.BundleBytes,
				InputsDigest: compile.InputsDigest(res.BundleBytes, base.DigestStr(), compile.Version),
				API:          apiName,
				Version:      res.Bundle.API.Version,
				Base:         base,
			}
			if req.API == "" {
				req.API = res.Bundle.API.Title
			}
			target := repo
			if target == "" {
				// A layout names images by tag only; the repository is a placeholder.
				target = "localhost/gatekiln/api"
			}
			if req.Repository, err = cfg.ParseRepository(target); err != nil {
				return err
			}
			opts, err := cfg.Remote(cmd.Context())
			if err != nil {
				return err
			}
			tag, err := req.Tag()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "api: %s %s\ninputs: %s\ntag: %s\n", req.API, req.Version, req.InputsDigest, tag.TagStr())
			publisher := image.Publisher(image.RegistryPublisher{Options: opts})
			if ociLayout != "" {
				publisher = image.LayoutPublisher{Path: ociLayout}
			} else if !force {
				checker, err := image.NewChecker(opts...)
				if err != nil {
					return err
				}
				ref, err := checker.Check(cmd.Context(), tag, req.InputsDigest)
				if err != nil {
					return err
				}
				if ref != "" {
					fmt.Fprintln(out, "reused: the tag already holds this image")
					fmt.Fprintln(out, ref)
					return nil
				}
			}
			builder := image.Direct{Base: image.RemoteBase{Options: opts}, Publisher: publisher}
			ref, err := builder.Build(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, "built")
			fmt.Fprintln(out, ref)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&runtimeRef, "runtime", "", "runtime base image by digest (gatekiln runtime-image prints it)")
	f.StringVar(&repo, "repo", "", "repository to push the image to")
	f.StringVar(&ociLayout, "oci-layout", "", "write the image into this OCI image layout directory instead of a registry")
	f.StringVar(&apiName, "api", "", "API name for the gatekiln.io/api label (default: the definition's title)")
	f.StringVar(&version, "version", "", "override the definition's info.version")
	f.BoolVar(&force, "force", false, "build and push even when the tag already holds this image")
	reg.add(f)
	_ = cmd.MarkFlagRequired("runtime")
	return cmd
}
