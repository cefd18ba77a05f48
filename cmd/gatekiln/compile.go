package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

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
name, Kubernetes manifests found in a directory, such as the kinds file or a
Secret, left out) and, with --kinds, the Endpoint, RateLimit, Security (and API)
objects it refers to. It writes bundle.json and binding.json into the -o
directory (nothing is written without -o), reports warnings on stderr, and
prints the inputs digest, sha256:<64 hex>, as the last line of stdout. The
digest covers the Bundle, the runtime base image digest (--runtime-digest,
empty by default) and the compiler version; it is the digest that names the
gateway image.

On a bad definition it exits 1 and prints every problem on stderr as
"file: pointer (line N): reason".`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runtimeDigest != "" && !digestPattern.MatchString(runtimeDigest) {
				return fmt.Errorf("--runtime-digest %q: want sha256:<64 lowercase hex>, the digest of the runtime base image", runtimeDigest)
			}
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
	cmd.Flags().StringVar(&runtimeDigest, "runtime-digest", "", "digest of the gateway runtime base image (sha256:<64 hex>), part of the inputs digest")
	cmd.Flags().StringVar(&version, "version", "", "override the definition's info.version")
	return cmd
}

// digestPattern is the form of a runtime base digest as gatekiln build and
// the operator put it into the inputs digest (name.Digest.DigestStr): another
// spelling of the same image would give another inputs digest.
var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// outputNames are the files compile -o writes, in the order they are renamed
// into place.
var outputNames = []string{"bundle.json", bundle.BindingFile}

// writeOutputs writes bundle.json and binding.json so that dir holds the old
// pair or the new one, never one of each: both are written to temporary
// files in dir first, then renamed over the old ones.
func writeOutputs(dir string, res *compile.Result) error {
	binding, err := res.Binding.Marshal()
	if err != nil {
		return fmt.Errorf("encode binding: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write outputs: %w", err)
	}
	// A rename fails when its target is a directory: find that before the
	// first rename, not between the two.
	for _, name := range outputNames {
		if st, err := os.Lstat(filepath.Join(dir, name)); err == nil && st.IsDir() {
			return fmt.Errorf("write outputs: %s: is a directory", filepath.Join(dir, name))
		}
	}
	var temps []string
	defer func() {
		for _, tmp := range temps {
			_ = os.Remove(tmp)
		}
	}()
	for _, data := range [][]byte{res.BundleBytes, binding} {
		tmp, err := writeTemp(dir, data)
		if err != nil {
			return fmt.Errorf("write outputs: %w", err)
		}
		temps = append(temps, tmp)
	}
	for i, name := range outputNames {
		if err := os.Rename(temps[i], filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("write outputs: %w", err)
		}
	}
	temps = nil
	return nil
}

// writeTemp writes data to a new hidden file in dir and returns its path.
// The file is made readable by all (CreateTemp makes it 0600), as the outputs
// always were: they hold no secret, only the names of Secrets.
func writeTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, ".gatekiln-compile-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		// On disk before the rename makes it the output.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
