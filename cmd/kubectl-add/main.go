// Command kubectl-add is the kubectl plugin behind `kubectl add api`: on PATH,
// kubectl runs it for `kubectl add …`. It parses flags and calls
// kubectl-plugin/addapi, which holds the logic.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/gatekiln/gatekiln/kubectl-plugin/addapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first Ctrl-C cancels and cleans up; a second one kills at once.
	context.AfterFunc(ctx, stop)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	config := genericclioptions.NewConfigFlags(true)

	root := &cobra.Command{
		Use:           "kubectl-add",
		Short:         "Add things to a cluster running the Gatekiln operator",
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl add"},
	}
	config.AddFlags(root.PersistentFlags())
	root.AddCommand(newAPICmd(config, streams))
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
	}
	// 130 after Ctrl-C, even if the command got to the end meanwhile.
	if code := addapi.ExitCode(ctx, err); code != 0 {
		os.Exit(code)
	}
}

func newAPICmd(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &addapi.Options{Config: config, IOStreams: streams}
	var replicas int32
	cmd := &cobra.Command{
		Use:   "api NAME --from-file=FILE [--from-file=FILE|DIR...]",
		Short: "Compile an API definition locally, store it and create or update the API object",
		Long: `Compile the definition with the compiler the operator runs (a bad definition is
refused with the compiler's file, pointer and reason, and nothing is written),
store its files in ConfigMaps (plain data when small, gzip'd binaryData when
large, several ConfigMaps when needed) and apply the API object with
server-side apply (field manager kubectl-add). Running it again with a changed
file updates the API in place.

NAME must start with a lowercase letter, hold only lowercase letters, digits
and '-', end with a letter or digit, and be at most 63 characters (a DNS-1035
label, as the gateway's Service takes this name): "petstore" and "pets-v2" are
names, "1pet" and "Pets" are not.

Each file may be at most 32 MiB (the compiler's limit). A file is never split
across ConfigMaps and a ConfigMap holds at most 1 MiB, so each file must also
be at most 1000 KiB once gzip'd.

The first --from-file is the root document, or a directory holding openapi.yaml
(or .yml/.json, or swagger.*); a directory brings every definition file under it
with its relative path, so relative $refs keep working. Kubernetes manifests in
a directory (YAML or JSON with apiVersion and kind at the top: the kinds file, a
Secret) are left out, so that no Secret is copied into a ConfigMap; a file
named with --from-file is stored whatever it holds.

The ConfigMaps are owned by the API: "kubectl delete api NAME" deletes them too.
Endpoints created with --endpoint are shared objects and stay. A run that is
refused or interrupted (Ctrl-C) before everything is written removes again
what it created (Endpoints that were not there, and a new API's ConfigMaps and
API object) and says what it removed or could not remove.

Flags are the whole desired state of the fields this command owns: a flag given
on an earlier run and left out now is released (spec.replicas falls back to its
default, for example).`,
		Example: `  kubectl add api petstore --from-file=samples/petstore/petstore.yaml
  kubectl add api petstore -n shop --from-file=petstore.yaml --endpoint petstore-backend=http://backend:8080 --wait
  kubectl add api box --from-file=box/openapi.json --build-strategy direct -o yaml --dry-run=client`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if cmd.Flags().Changed("replicas") {
				o.Replicas = &replicas
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.Files, "from-file", "f", nil, "definition file or directory (repeatable; the first is the root)")
	f.StringVar(&o.Version, "version", "", "override the definition's info.version (spec.version, part of the image tag)")
	f.Int32Var(&replicas, "replicas", 1, "gateway replicas (spec.replicas)")
	f.StringVar(&o.Strategy, "build-strategy", "", "kaniko or direct (spec.build.strategy; default: the operator's)")
	f.StringVar(&o.Image, "image", "", "a prebuilt gateway image to deploy instead of building, as REGISTRY/REPO[:TAG|@DIGEST] (spec.image.ref)")
	f.StringVar(&o.PullSecret, "pull-secret", "", "kubernetes.io/dockerconfigjson Secret the gateway Pods pull their image with (spec.image.pullSecretRef)")
	f.BoolVar(&o.ForceRebuild, "force-rebuild", false, "build again even if the image exists (sets spec.build.forceRebuild)")
	f.StringArrayVar(&o.Endpoints, "endpoint", nil, "NAME=URL: create or update the Endpoint NAME the definition uses (repeatable)")
	f.StringVar(&o.DryRun, "dry-run", addapi.DryRunNone, "none, client (print what would be written) or server (send it, persist nothing)")
	f.Lookup("dry-run").NoOptDefVal = addapi.DryRunClient
	f.StringVarP(&o.Output, "output", "o", "", "print the written objects as yaml or json")
	f.BoolVar(&o.Wait, "wait", false, "follow the API's progress (Resolving, Building, Deploying, Ready) until it is ready or fails")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long --wait waits (more than 0)")
	return cmd
}
