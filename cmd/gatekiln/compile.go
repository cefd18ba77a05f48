package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/source"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

func init() { subcommands = append(subcommands, newCompileCmd()) }

func newCompileCmd() *cobra.Command {
	var kindsFile, outDir, runtimeDigest, version string
	cmd := &cobra.Command{
		Use:   "compile [--kinds FILE] [-o DIR] FILE|DIR...",
		Short: "Compile an API definition into a Bundle and a Binding; print the inputs digest",
		Long: `Compile reads an OpenAPI 3.0/3.1 or Swagger 2.0 definition (the first argument
is the root document; further files and directories supply the files its $refs
name) and, with --kinds, the Endpoint, RateLimit, Security (and API) objects it
refers to. It writes bundle.json and binding.json into the -o directory (nothing
is written without -o), reports warnings on stderr, and prints the inputs digest,
sha256:<64 hex>, as the last line of stdout. The digest covers the Bundle, the
runtime base image digest (--runtime-digest, empty by default) and the compiler
version; it is the digest that names the gateway image.

On a bad definition it exits 1 and prints every problem on stderr as
"file: pointer (line N): reason".`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := source.Read(args...)
			if err != nil {
				return err
			}
			in := compile.Input{Files: files, Version: version}
			if kindsFile != "" {
				if in.Kinds, err = source.ReadKinds(kindsFile); err != nil {
					return err
				}
			}
			res, err := compile.Compile(in)
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w.Error())
			}
			if outDir != "" {
				if err := writeOutputs(outDir, res); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			b := res.Bundle
			fmt.Fprintf(out, "api: %s %s, base path %s, %d routes\n", b.API.Title, b.API.Version, b.API.BasePath, len(b.Routes))
			fmt.Fprintf(out, "bundle: %s\n", res.BundleDigest)
			fmt.Fprintln(out, compile.InputsDigest(res.BundleBytes, runtimeDigest, compile.Version))
			return nil
		},
	}
	cmd.Flags().StringVar(&kindsFile, "kinds", "", "YAML stream of gatekiln.io/v1alpha1 objects to resolve names against")
	cmd.Flags().StringVarP(&outDir, "output", "o", "", "directory to write bundle.json and binding.json into")
	cmd.Flags().StringVar(&runtimeDigest, "runtime-digest", "", "digest of the gateway runtime base image, part of the inputs digest")
	cmd.Flags().StringVar(&version, "version", "", "override the definition's info.version")
	return cmd
}

func writeOutputs(dir string, res *compile.Result) error {
	binding, err := res.Binding.Marshal()
	if err != nil {
		return fmt.Errorf("encode binding: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write outputs: %w", err)
	}
	for name, data := range map[string][]byte{"bundle.json": res.BundleBytes, bundle.BindingFile: binding} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write outputs: %w", err)
		}
	}
	return nil
}
