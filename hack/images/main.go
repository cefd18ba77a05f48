// Command images assembles OCI images with go-containerregistry (no Docker)
// and pushes them to a registry. Every image is one deterministic layer on an
// empty base.
//
//	images pause --ref REG/pause:3.10 --binary bin/images/pause [--insecure]
//	images push  --ref REG/NAME:TAG --file /dst=SRC[:MODE] [--dir /d] [--ca-certs]
//	             [--entrypoint ARG]... [--cmd ARG]... [--env K=V]... [--user U]
//	             [--workdir D] [--label K=V]... [--insecure] [--digest-file F]
//
// It prints the pushed reference by digest. New images need no Go change:
// describe them with `images push` flags in a Makefile target, or add a
// subcommand that fills a Spec and calls Build and Push.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "pause":
		err = runPause(os.Args[2:])
	case "push":
		err = runPush(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: images pause|push [flags] (see -h of each)")
	os.Exit(2)
}

// caBundle is where Debian keeps the CA certificates an image may carry.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

func runPause(args []string) error {
	fs := flag.NewFlagSet("pause", flag.ExitOnError)
	ref := fs.String("ref", "", "image reference to push")
	bin := fs.String("binary", "", "the static pause binary")
	insecure := fs.Bool("insecure", false, "plain HTTP registry")
	digestFile := fs.String("digest-file", "", "write the pushed reference by digest here")
	fs.Parse(args)
	if *ref == "" || *bin == "" {
		return errors.New("pause: --ref and --binary are required")
	}
	return buildAndPush(Spec{
		Files:      map[string]File{"/pause": {Source: *bin, Mode: 0o755}},
		Entrypoint: []string{"/pause"},
		User:       "65535:65535",
	}, *ref, *insecure, *digestFile)
}

func runPush(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	ref := fs.String("ref", "", "image reference to push")
	insecure := fs.Bool("insecure", false, "plain HTTP registry")
	caCerts := fs.Bool("ca-certs", false, "add this machine's CA bundle as /etc/ssl/certs/ca-certificates.crt")
	user := fs.String("user", "", "user[:group] the image runs as")
	workdir := fs.String("workdir", "", "working directory")
	digestFile := fs.String("digest-file", "", "write the pushed reference by digest here")
	var files, dirs, entrypoint, cmd, env, labels list
	fs.Var(&files, "file", "/dst=SRC[:MODE] (octal mode; repeatable)")
	fs.Var(&dirs, "dir", "an empty directory /d[:MODE] (repeatable)")
	fs.Var(&entrypoint, "entrypoint", "one entrypoint argument (repeatable)")
	fs.Var(&cmd, "cmd", "one cmd argument (repeatable)")
	fs.Var(&env, "env", "K=V (repeatable)")
	fs.Var(&labels, "label", "K=V (repeatable)")
	fs.Parse(args)
	if *ref == "" {
		return errors.New("push: --ref is required")
	}
	spec := Spec{Files: map[string]File{}, Entrypoint: entrypoint, Cmd: cmd, Env: env, User: *user, WorkingDir: *workdir, Labels: map[string]string{}}
	for _, f := range files {
		dst, src, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("--file %q: want /dst=SRC[:MODE]", f)
		}
		mode := int64(0)
		if i := strings.LastIndex(src, ":"); i >= 0 {
			m, err := strconv.ParseInt(src[i+1:], 8, 32)
			if err != nil {
				return fmt.Errorf("--file %q: mode: %w", f, err)
			}
			src, mode = src[:i], m
		}
		spec.Files[dst] = File{Source: src, Mode: mode}
	}
	for _, d := range dirs {
		dst, m, _ := strings.Cut(d, ":")
		mode := int64(0)
		if m != "" {
			v, err := strconv.ParseInt(m, 8, 32)
			if err != nil {
				return fmt.Errorf("--dir %q: mode: %w", d, err)
			}
			mode = v
		}
		spec.Files[dst] = File{Dir: true, Mode: mode}
	}
	if *caCerts {
		spec.Files[caBundle] = File{Source: caBundle}
	}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		spec.Labels[k] = v
	}
	return buildAndPush(spec, *ref, *insecure, *digestFile)
}

func buildAndPush(spec Spec, ref string, insecure bool, digestFile string) error {
	img, err := Build(spec)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := Push(ctx, img, ref, insecure)
	if err != nil {
		return err
	}
	fmt.Println(out)
	if digestFile != "" {
		return os.WriteFile(digestFile, []byte(out+"\n"), 0o644)
	}
	return nil
}
