// Package addapi is `kubectl add api`: it compiles an API definition locally
// with the same compiler the operator runs, refuses a bad one before anything
// is written, stores the definition in ConfigMaps and applies the API (and
// any Endpoints given on the command line) with server-side apply, then
// optionally follows the API's conditions until it is Ready.
package addapi

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/source"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// Dry-run modes, as kubectl spells them.
const (
	DryRunNone   = "none"
	DryRunClient = "client"
	DryRunServer = "server"
)

// nameRule is what an API name must be, in words: a DNS-1035 label, since
// the gateway's Service takes the API's name. The help says the same.
const nameRule = "must start with a lowercase letter, hold only lowercase letters, digits and '-', " +
	"end with a letter or digit, and be at most 63 characters (a DNS-1035 label)"

// Options are the command line of `kubectl add api`.
type Options struct {
	Name string
	// Files are the --from-file arguments: the first is the root document
	// (or a directory holding it); directories bring every definition file
	// under them, relative paths intact, Kubernetes manifests (a Secret, the
	// kinds file) excepted (source.Manifest).
	Files []string
	// Version overrides the definition's info.version (spec.version).
	Version  string
	Replicas *int32
	// Strategy is "kaniko", "direct" or empty (the operator's default).
	Strategy string
	// Image names a prebuilt image: nothing is built.
	Image        string
	ForceRebuild bool
	// PullSecret names a kubernetes.io/dockerconfigjson Secret in the API's
	// namespace for pulling the gateway image from a registry with auth.
	PullSecret string
	// Endpoints are NAME=URL pairs; each NAME becomes an Endpoint object.
	Endpoints []string
	// DryRun is none (or empty), client or server.
	DryRun string
	// Output is empty (one line per object), yaml or json.
	Output  string
	Wait    bool
	Timeout time.Duration

	// Config reaches the cluster (k8s.io/cli-runtime's --kubeconfig,
	// --context, -n …).
	Config genericclioptions.RESTClientGetter
	genericiooptions.IOStreams
	// Now stamps --force-rebuild; nil means time.Now.
	Now func() time.Time
}

// Validate checks the options on their own, before any file is read.
func (o *Options) Validate() error {
	var errs []error
	if msgs := validation.IsDNS1035Label(o.Name); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("api name %q: %s", o.Name, nameRule))
	}
	if len(o.Files) == 0 {
		errs = append(errs, errors.New("--from-file: give the definition file (or a directory)"))
	}
	if _, err := strategy(o.Strategy); err != nil {
		errs = append(errs, err)
	}
	if o.Replicas != nil && *o.Replicas < 0 {
		errs = append(errs, fmt.Errorf("--replicas %d: must be 0 or more", *o.Replicas))
	}
	switch o.DryRun {
	case "", DryRunNone, DryRunClient, DryRunServer:
	default:
		errs = append(errs, fmt.Errorf("--dry-run %q: want none, client or server", o.DryRun))
	}
	switch o.Output {
	case "", "yaml", "json":
	default:
		errs = append(errs, fmt.Errorf("-o %q: want yaml or json", o.Output))
	}
	if o.Wait && o.dryRun() {
		errs = append(errs, errors.New("--wait: nothing to wait for with --dry-run"))
	}
	// wait treats a timeout of 0 or less as none at all: refuse it rather
	// than wait forever when the user asked for a bound.
	if o.Wait && o.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %s: --wait needs a timeout above 0", o.Timeout))
	}
	if o.Image != "" {
		// The operator parses spec.image.ref the same way (no tag means latest).
		if _, err := name.ParseReference(o.Image); err != nil {
			errs = append(errs, fmt.Errorf("--image %q: not an image reference: %w", o.Image, err))
		}
		if o.Strategy != "" || o.ForceRebuild {
			errs = append(errs, errors.New("--image names a prebuilt image: --build-strategy and --force-rebuild do not apply"))
		}
	}
	if o.PullSecret != "" {
		if msgs := validation.IsDNS1123Subdomain(o.PullSecret); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--pull-secret %q: not a Secret name: %s", o.PullSecret, strings.Join(msgs, "; ")))
		}
	}
	if _, err := ParseEndpoints(o.Endpoints); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (o *Options) dryRun() bool { return o.DryRun == DryRunClient || o.DryRun == DryRunServer }

func strategy(s string) (string, error) {
	switch strings.ToLower(s) {
	case "":
		return "", nil
	case "kaniko":
		return v1alpha1.BuildKaniko, nil
	case "direct":
		return v1alpha1.BuildDirect, nil
	}
	return "", fmt.Errorf("--build-strategy %q: want kaniko or direct", s)
}

// ParseEndpoints reads NAME=URL pairs.
func ParseEndpoints(args []string) ([]EndpointURL, error) {
	var out []EndpointURL
	var errs []error
	for _, a := range args {
		// Quoted with any user info hidden: the message is printed.
		shown := bundle.RedactURL(a)
		name, raw, ok := strings.Cut(a, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("--endpoint %q: want NAME=URL", shown))
			continue
		}
		if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--endpoint %q: name %q: %s", shown, bundle.RedactURL(name), strings.Join(msgs, "; ")))
			continue
		}
		u, err := url.Parse(raw)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("--endpoint %q: %q is not an http:// or https:// URL", shown, bundle.RedactURL(raw)))
			continue
		case u.User != nil:
			// The Endpoint object and the output would carry the
			// credentials, and the gateway refuses such a URL anyway.
			errs = append(errs, fmt.Errorf("--endpoint %q: the URL holds user info (credentials before '@'); an upstream URL may not carry credentials", shown))
			continue
		}
		out = append(out, EndpointURL{Name: name, URL: raw})
	}
	return out, errors.Join(errs...)
}

// Plan is everything the command will write, computed without the cluster.
type Plan struct {
	Namespace  string
	Spec       Spec
	Definition *Definition
	Endpoints  []EndpointURL
	Result     *compile.Result
	// Files are the definition files, root first.
	Files []compile.File
}

// Prepare reads and compiles the definition and packs it: the part of the
// command that needs no cluster. A definition the compiler refuses is an
// error carrying the compiler's problems; nothing has been written then.
// Once ctx is cancelled (Ctrl-C) it stops at the next stage with an error.
func (o *Options) Prepare(ctx context.Context) (*Plan, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ns, err := o.namespace()
	if err != nil {
		return nil, err
	}
	if err := stopped(ctx, "before reading the definition; nothing was written"); err != nil {
		return nil, err
	}
	files, err := source.Read(o.Files...)
	if err != nil {
		return nil, fmt.Errorf("definition refused, nothing was written: %w", err)
	}
	if err := stopped(ctx, "before compiling the definition; nothing was written"); err != nil {
		return nil, err
	}
	// Compile takes no context: a Ctrl-C during it is seen when it returns.
	res, err := compile.Compile(compile.Input{Files: files, Version: o.Version})
	if err := stopped(ctx, "while compiling the definition; nothing was written"); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("definition refused, nothing was written:\n%w", err)
	}
	eps, _ := ParseEndpoints(o.Endpoints)
	names := res.Bundle.EndpointNames()
	for _, e := range eps {
		if !slices.Contains(names, e.Name) {
			return nil, fmt.Errorf("--endpoint %s: the definition names no endpoint %q (it names: %s)", e.Name, e.Name, listOrNone(names))
		}
	}
	def, err := Pack(o.Name, ns, files)
	if err != nil {
		return nil, fmt.Errorf("definition refused, nothing was written: %w", err)
	}
	st, _ := strategy(o.Strategy)
	spec := Spec{Name: o.Name, Namespace: ns, Version: o.Version, Replicas: o.Replicas, Strategy: st, Image: o.Image, PullSecret: o.PullSecret}
	if o.ForceRebuild {
		now := time.Now
		if o.Now != nil {
			now = o.Now
		}
		spec.ForceRebuild = now().UTC().Format(time.RFC3339Nano)
	}
	return &Plan{Namespace: ns, Spec: spec, Definition: def, Endpoints: eps, Result: res, Files: files}, nil
}

// namespace is the namespace to write to (-n, or the kubeconfig context's),
// refused unless it is one a namespace can have, before anything is read.
func (o *Options) namespace() (string, error) {
	ns, flag, err := o.Config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("namespace: %w", err)
	}
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		from := "-n"
		if !flag {
			from = "namespace of the kubeconfig context"
		}
		return "", fmt.Errorf("%s %q: not a valid namespace: %s", from, ns, strings.Join(msgs, "; "))
	}
	return ns, nil
}

// stopped is an error once ctx is cancelled (Ctrl-C, SIGTERM), saying how
// far the command got, so that no later stage runs and an interrupted run
// never ends as a successful one; nil otherwise.
func stopped(ctx context.Context, where string) error {
	if ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("interrupted %s: %w", where, context.Cause(ctx))
}

// ExitCode is the status to exit with after the command returned err: 130,
// as a shell reports an interrupted command, once ctx is cancelled (so that
// a script never takes an interrupted run for a failed or successful one),
// otherwise 1 for an error and 0 for none.
func ExitCode(ctx context.Context, err error) int {
	switch {
	case ctx.Err() != nil:
		return 130
	case err != nil:
		return 1
	}
	return 0
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// Run is the whole command.
func (o *Options) Run(ctx context.Context) error {
	plan, err := o.Prepare(ctx)
	if err != nil {
		return err
	}
	for _, w := range plan.Result.Warnings {
		fmt.Fprintln(o.ErrOut, "warning:", w.Error())
	}
	if o.DryRun == DryRunClient {
		return o.print(plan.objects())
	}
	if err := stopped(ctx, "before contacting the cluster; nothing was written"); err != nil {
		return err
	}
	c, err := newCluster(o.Config)
	if err != nil {
		return err
	}
	if err := c.checkInstalled(ctx); err != nil {
		return err
	}
	c.preflight(ctx, o.ErrOut, plan, plan.Files)
	// preflight warns and goes on, so a Ctrl-C during it is only seen here.
	if err := stopped(ctx, "before writing to the cluster; nothing was written"); err != nil {
		return err
	}
	w, err := c.apply(ctx, plan, o.DryRun == DryRunServer)
	if err != nil {
		return err
	}
	if err := o.print(w.Objects); err != nil {
		return err
	}
	o.printDeleted(w.Deleted)
	if !o.Wait {
		// What is listed was written; a Ctrl-C meanwhile still fails the run.
		return stopped(ctx, "after writing the objects listed")
	}
	return c.wait(ctx, o.progressOut(), plan.Spec, w.API.GetGeneration(), o.Timeout)
}
