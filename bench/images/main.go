// Command images measures, in one run against docker-registry on 127.0.0.1:
// the Direct build+push of the petstore gateway image, the floor (a bare
// go-containerregistry append+push of the same Bundle layer onto one platform
// of the base, as `crane append` does), the real Kaniko executor building the
// same context, and the skip check. Each figure is the median of -n runs,
// every run pushing to a fresh repository. The last line is
// `ratio direct/floor: <x.xx>` (target: at most 2).
//
//	go run ./bench/images [-n 9] [-gateway /usr/bin/busybox]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/kaniko"
	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
	"github.com/gatekiln/gatekiln/builder/source"
	"github.com/gatekiln/gatekiln/test/kanikorun"
)

func main() {
	n := flag.Int("n", 9, "runs per measurement (the median is printed)")
	definition := flag.String("definition", "samples/petstore/petstore.yaml", "API definition to build")
	gateway := flag.String("gateway", "", "static binary to use as the gateway in the runtime base (default: build ./cmd/gatekiln-gateway)")
	flag.Parse()
	if err := run(*n, *definition, *gateway); err != nil {
		fmt.Fprintln(os.Stderr, "bench/images:", err)
		os.Exit(1)
	}
}

func run(n int, definition, gateway string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-images-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	reg, err := registrytest.Launch(ctx, registrytest.Options{Dir: filepath.Join(dir, "registry")})
	if err != nil {
		return err
	}
	defer reg.Close()
	rec := &registrytest.Recorder{}
	cfg := reg.Config()
	cfg.WrapTransport = rec.Wrap
	opts, err := cfg.Remote(ctx)
	if err != nil {
		return err
	}

	// The runtime base: the real gateway when it can be built, else a static
	// stand-in of similar kind (the base is mounted, not uploaded, by both
	// builders; only Kaniko unpacks it).
	bins, what, err := gatewayBinaries(ctx, dir, gateway)
	if err != nil {
		return err
	}
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		return err
	}
	baseIdx, err := image.RuntimeBase(image.RuntimeOptions{Binaries: bins, CACerts: certs})
	if err != nil {
		return err
	}
	baseRepo, err := cfg.ParseRepository(reg.Host + "/gatekiln/runtime")
	if err != nil {
		return err
	}
	baseRef, err := image.RegistryPublisher{Options: opts}.Publish(ctx, baseIdx, baseRepo.Tag("bench"))
	if err != nil {
		return err
	}
	base, err := name.NewDigest(baseRef, name.Insecure)
	if err != nil {
		return err
	}

	files, err := source.Read(definition)
	if err != nil {
		return err
	}
	res, err := compile.Compile(compile.Input{Files: files})
	if err != nil {
		return err
	}
	request := func(repo string) (image.Request, error) {
		r, err := cfg.ParseRepository(reg.Host + "/" + repo)
		return image.Request{
			Bundle:       res.BundleBytes,
			InputsDigest: compile.InputsDigest(res.BundleBytes, base.DigestStr(), compile.Version),
			API:          "bench/petstore",
			Version:      res.Bundle.API.Version,
			Repository:   r,
			Base:         base,
		}, err
	}
	fmt.Printf("bench/images: docker-registry on %s, %s, Bundle %d bytes, runtime base %s (%s), median of %d runs\n",
		reg.Host, definition, len(res.BundleBytes), base.DigestStr()[:19], what, n)

	layerTar, err := bundleTar(res.BundleBytes)
	if err != nil {
		return err
	}
	cached := &image.CachedBase{Options: opts}
	// The three are interleaved, run by run, so that load from elsewhere on
	// the machine weighs on each alike.
	times, err := interleave(n, map[string]func(i int) error{
		// Direct, as gatekiln build runs it: read the base, append, push.
		"direct": func(i int) error {
			req, err := request(fmt.Sprintf("direct/cold-%d", i))
			if err != nil {
				return err
			}
			_, err = image.Direct{Base: image.RemoteBase{Options: opts}, Publisher: image.RegistryPublisher{Options: opts}}.Build(ctx, req)
			return err
		},
		// Direct as the operator runs it: the base (named by digest) read once.
		"warm": func(i int) error {
			req, err := request(fmt.Sprintf("direct/warm-%d", i))
			if err != nil {
				return err
			}
			_, err = image.Direct{Base: cached, Publisher: image.RegistryPublisher{Options: opts}}.Build(ctx, req)
			return err
		},
		// The floor: crane append of the same layer onto one platform.
		"floor": func(i int) error {
			baseImg, err := remote.Image(base, append(opts, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))...)
			if err != nil {
				return err
			}
			layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
			if err != nil {
				return err
			}
			img, err := mutate.AppendLayers(baseImg, layer)
			if err != nil {
				return err
			}
			dst, err := cfg.ParseReference(fmt.Sprintf("%s/floor/run-%d:latest", reg.Host, i))
			if err != nil {
				return err
			}
			return remote.Write(dst, img, opts...)
		},
	})
	if err != nil {
		return err
	}
	direct, warm, floor := times["direct"], times["warm"], times["floor"]

	// Kaniko: the real executor on the rendered context and Job.
	exe, err := kanikorun.Default()
	if err != nil {
		return err
	}
	exe.WorkDir = dir
	kanikoRuns := max(3, n/3)
	kan, err := measure(kanikoRuns, func(i int) error {
		req, err := request(fmt.Sprintf("kaniko/run-%d", i))
		if err != nil {
			return err
		}
		b, err := kaniko.Render(req, kaniko.Options{Name: "bench", Namespace: "bench", Insecure: cfg.Insecure})
		if err != nil {
			return err
		}
		_, err = exe.Run(ctx, b, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("kaniko: %w", err)
	}

	// Skip: the tag direct/cold-0 holds; a checker that has met the registry.
	req, err := request("direct/cold-0")
	if err != nil {
		return err
	}
	tag, err := req.Tag()
	if err != nil {
		return err
	}
	checker, err := image.NewChecker(opts...)
	if err != nil {
		return err
	}
	if _, err := checker.Check(ctx, tag, req.InputsDigest); err != nil {
		return err
	}
	rec.Reset()
	skip, err := measure(n, func(int) error {
		ref, err := checker.Check(ctx, tag, req.InputsDigest)
		if err == nil && ref == "" {
			err = fmt.Errorf("skip check: %s not found", tag)
		}
		return err
	})
	if err != nil {
		return err
	}
	trips := float64(len(rec.Requests())) / float64(n)

	fmt.Printf("direct build+push, base read each time:   %7.4f s  (2 platforms)\n", direct.Seconds())
	fmt.Printf("direct build+push, base cached by digest: %7.4f s  (2 platforms)\n", warm.Seconds())
	fmt.Printf("floor (ggcr append+push, 1 platform):     %7.4f s\n", floor.Seconds())
	fmt.Printf("kaniko executor build+push (chroot):      %7.4f s  (median of %d)\n", kan.Seconds(), kanikoRuns)
	fmt.Printf("skip check:                               %7.4f s  (%.0f round trip per check)\n", skip.Seconds(), trips)
	fmt.Printf("ratio kaniko/direct: %.1f\n", kan.Seconds()/direct.Seconds())
	fmt.Printf("ratio direct/floor: %.2f\n", direct.Seconds()/floor.Seconds())
	return nil
}

func interleave(n int, fs map[string]func(i int) error) (map[string]time.Duration, error) {
	names := make([]string, 0, len(fs))
	for k := range fs {
		names = append(names, k)
	}
	sort.Strings(names)
	all := map[string][]time.Duration{}
	for i := 0; i < n; i++ {
		for _, k := range names {
			start := time.Now()
			if err := fs[k](i); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			all[k] = append(all[k], time.Since(start))
		}
	}
	out := map[string]time.Duration{}
	for k, ds := range all {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		out[k] = ds[len(ds)/2]
	}
	return out, nil
}

func measure(n int, f func(i int) error) (time.Duration, error) {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := f(i); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], nil
}

// bundleTar is the layer the floor appends: the same single file.
func bundleTar(bundleJSON []byte) ([]byte, error) {
	l, err := image.BundleLayer(bundleJSON)
	if err != nil {
		return nil, err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }()
	return io.ReadAll(rc)
}

func gatewayBinaries(ctx context.Context, dir, given string) ([]image.Binary, string, error) {
	if given != "" {
		var out []image.Binary
		for _, p := range image.DefaultPlatforms {
			out = append(out, image.Binary{Platform: p, Path: given})
		}
		return out, given + " standing in for the gateway", nil
	}
	if _, err := os.Stat("cmd/gatekiln-gateway"); err == nil {
		var out []image.Binary
		for _, p := range image.DefaultPlatforms {
			bin := filepath.Join(dir, "gatekiln-gateway-"+p.Architecture)
			if err := image.BuildBinary(ctx, image.GoBuild{Dir: ".", Package: "./cmd/gatekiln-gateway", Platform: p, Out: bin}); err != nil {
				return nil, "", err
			}
			out = append(out, image.Binary{Platform: p, Path: bin})
		}
		return out, "gatekiln-gateway built for linux/amd64 and linux/arm64", nil
	}
	var out []image.Binary
	for _, p := range image.DefaultPlatforms {
		out = append(out, image.Binary{Platform: p, Path: "/usr/bin/busybox"})
	}
	return out, "cmd/gatekiln-gateway not present yet: static busybox stands in for the gateway", nil
}
