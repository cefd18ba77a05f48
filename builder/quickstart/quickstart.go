// Package quickstart runs an API on this machine with nothing else set up:
// `gatekiln up` compiles a definition, builds its gateway image with the
// Direct builder into a registry served by this process, reads the Bundle
// back out of that image and serves it with the real gateway in process,
// behind which a mock upstream answers from the definition's examples;
// `gatekiln run` serves a definition, an image or a bundle.json with a
// Binding from a directory or from flags.
//
// Why here: it is the one place that needs both halves of the system — the
// builder (compile, image, registry) and the gateway runtime (gateway,
// policies, mock). The runtime must never import the builder (that rule keeps
// the gateway image small and its inputs the Bundle alone), so the
// composition lives on the builder side, as a leaf: nothing in builder/
// imports it, so neither the operator nor the compiler links a gateway.
package quickstart

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/inspect"
	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/builder/source"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// UpOptions are the command line of `gatekiln up`.
type UpOptions struct {
	// Files are the definition (root first) and any files or directories its
	// $refs need, as for `gatekiln compile`.
	Files []string
	// GatewayBinary, when set, is a static linux gatekiln-gateway binary: the
	// image is then built on the real runtime base around it, and runs in a
	// cluster too. Without it the base is an empty image: nothing runs the
	// image here, it carries the Bundle the in-process gateway serves.
	GatewayBinary string
	Serve         ServeOptions
}

// Up is `gatekiln up`: it returns when ctx ends (Ctrl-C), after stopping
// the gateway, the mock and the registry.
func Up(ctx context.Context, o UpOptions) error {
	res, err := compileFiles(o.Files, o.Serve.Err)
	if err != nil {
		return err
	}
	reg, err := startRegistry()
	if err != nil {
		return err
	}
	defer reg.Close()
	built, err := reg.build(ctx, res, o.GatewayBinary)
	if err != nil {
		return err
	}
	// Serve what the image holds, not what was compiled: the image is the
	// thing a cluster would run.
	loaded, err := inspect.Load(ctx, built.Ref, reg.Config)
	if err != nil {
		return fmt.Errorf("read the bundle back from %s: %w", built.Ref, err)
	}
	b := loaded.Bundle
	describe := func(w io.Writer) {
		fmt.Fprintf(w, "gatekiln up: %s %s, %d routes, from %s\n", b.API.Title, b.API.Version, len(b.Routes), strings.Join(o.Files, " "))
		fmt.Fprintf(w, "  image     %s, built by the Direct builder into a registry this process serves\n", built.Tag)
		fmt.Fprintf(w, "            %s\n", built.Ref)
		fmt.Fprintf(w, "            base: %s\n", built.BaseKind)
		fmt.Fprintf(w, "            see: gatekiln inspect --insecure-registry %s %s\n", reg.Host, built.Ref)
	}
	return serve(ctx, b, bindingPlan{Mock: true, Values: Values{Generate: true}}, o.Serve, describe)
}

// compileFiles reads and compiles a definition on its own (no kinds),
// printing the compiler's warnings to warn (nil: nowhere).
func compileFiles(args []string, warn io.Writer) (*compile.Result, error) {
	files, err := source.Read(args...)
	if err != nil {
		return nil, err
	}
	res, err := compile.Compile(compile.Input{Files: files})
	if err != nil {
		return nil, fmt.Errorf("compile %s:\n%w", args[0], err)
	}
	if warn == nil {
		warn = io.Discard
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(warn, "warning:", w.Error())
	}
	return res, nil
}

// RunOptions are the command line of `gatekiln run`.
type RunOptions struct {
	// Files are a definition to compile; Image is instead an image reference,
	// an OCI layout or a bundle.json (see inspect.Load).
	Files    []string
	Image    string
	Registry registry.Config
	// BindingDir holds binding.json and its files; it is served as it is
	// (and reloaded on change) unless flags add to it.
	BindingDir string
	// Endpoints are NAME=URL; APIKeys are SCHEME=KEY.
	Endpoints, APIKeys []string
	// Mock serves every endpoint without a URL, and every route that names
	// no endpoint, from the definition's examples.
	Mock bool
	// Credentials generates a credential for every scheme without one.
	Credentials bool
	Serve       ServeOptions
}

// Run is `gatekiln run`.
func Run(ctx context.Context, o RunOptions) error {
	if (len(o.Files) > 0) == (o.Image != "") {
		return fmt.Errorf("give a definition (FILE|DIR...) or --image, not both or neither")
	}
	eps, err := pairs("--endpoint", o.Endpoints)
	if err != nil {
		return err
	}
	for name, urls := range eps {
		for _, raw := range urls {
			// Quoted with any user info hidden: the message is printed.
			u, err := url.Parse(raw)
			switch {
			case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
				return fmt.Errorf("--endpoint %s=%s: not an http:// or https:// URL", name, bundle.RedactURL(raw))
			case u.User != nil:
				// The gateway refuses it, quoting it whole in its log and
				// in what this command prints.
				return fmt.Errorf("--endpoint %s=%s: the URL holds user info (credentials before '@'); an upstream URL may not carry credentials", name, bundle.RedactURL(raw))
			}
		}
	}
	keys := map[string]string{}
	kv, err := secretPairs("--api-key", o.APIKeys)
	if err != nil {
		return err
	}
	for k, v := range kv {
		keys[k] = v[len(v)-1]
	}
	var b *bundle.Bundle
	var from string
	if o.Image != "" {
		l, err := inspect.Load(ctx, o.Image, o.Registry)
		if err != nil {
			return err
		}
		b, from = l.Bundle, l.Ref
	} else {
		res, err := compileFiles(o.Files, o.Serve.Err)
		if err != nil {
			return err
		}
		b, from = res.Bundle, strings.Join(o.Files, " ")
	}
	plan := bindingPlan{Dir: o.BindingDir, Mock: o.Mock, Values: Values{Endpoints: eps, APIKeys: keys, Generate: o.Credentials}}
	describe := func(w io.Writer) {
		fmt.Fprintf(w, "gatekiln run: %s %s, %d routes, from %s\n", b.API.Title, b.API.Version, len(b.Routes), from)
	}
	return serve(ctx, b, plan, o.Serve, describe)
}

// pairs reads NAME=VALUE flags, a repeated name collecting its values. A
// malformed one is quoted with any URL user info hidden.
func pairs(flag string, args []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%s %q: want NAME=VALUE", flag, bundle.RedactURL(a))
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}

// secretPairs reads SCHEME=KEY flags as pairs does, but a malformed one is
// named by its position, never quoted, its scheme included: with the scheme
// forgotten, `--api-key KEY` is the key alone, and a base64 key's padding
// makes `--api-key a2V5==` look like scheme a2V5; the error is printed.
func secretPairs(flag string, args []string) (map[string][]string, error) {
	out := map[string][]string{}
	for i, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%s (the %s one): want SCHEME=KEY, both non-empty (the value is not shown: it may hold a key)", flag, ordinal(i+1))
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}
