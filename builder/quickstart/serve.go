package quickstart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/gateway"
	"github.com/gatekiln/gatekiln/gatewayruntime/mock"
	"github.com/gatekiln/gatekiln/gatewayruntime/policy"
)

// DefaultAddr is where the local gateway listens unless told otherwise.
const DefaultAddr = "127.0.0.1:8080"

// ServeOptions say where and how the local gateway serves.
type ServeOptions struct {
	// Addr is the gateway's plain HTTP address (DefaultAddr when empty); port
	// 0 picks a free port.
	Addr string
	// AdminAddr serves /metrics, /healthz and /readyz; empty: none.
	AdminAddr string
	// AccessLog, when set, receives one JSON line per request.
	AccessLog io.Writer
	// Logger receives the gateway's own logs; nil discards them.
	Logger *slog.Logger
	// Out receives what a person reads: the URL, the curl lines.
	Out io.Writer
	// Err receives warnings (the compiler's), apart from Out as compile and
	// build keep them; nil discards them.
	Err io.Writer
}

// bindingPlan says where the Binding comes from: an existing directory, the
// values of Values (with the mock as the default endpoint when Mock), or the
// directory overlaid with those values.
type bindingPlan struct {
	Dir    string
	Values Values
	Mock   bool
	// MockEndpoint, set by serve when Mock, names the endpoint it gave the
	// routes that name none (see withMockEndpoint).
	MockEndpoint string
}

func (p bindingPlan) onlyDir() bool {
	return p.Dir != "" && !p.Mock && !p.Values.Generate && len(p.Values.Endpoints) == 0 && len(p.Values.APIKeys) == 0
}

// serve runs the gateway for b, and the mock upstream when asked, until ctx
// ends; describe prints what led here (the image) above the URL.
func serve(ctx context.Context, b *bundle.Bundle, plan bindingPlan, o ServeOptions, describe func(io.Writer)) error {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	addr, err := resolveAddr("--addr", o.Addr)
	if err != nil {
		return err
	}
	adminAddr := o.AdminAddr
	if adminAddr != "" {
		if adminAddr, err = resolveAddr("--admin-addr", adminAddr); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "gatekiln-local-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	var mockSrv *http.Server
	var mockLn net.Listener
	if plan.Mock {
		b, plan.MockEndpoint = withMockEndpoint(b)
		m, err := mock.New(b)
		if err != nil {
			return err
		}
		if mockLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return fmt.Errorf("mock upstream: %w", err)
		}
		plan.Values.DefaultURL = "http://" + mockLn.Addr().String()
		mockSrv = &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = mockSrv.Serve(mockLn) }()
		defer mockSrv.Close()
	}

	bindingDir := plan.Dir
	var local *Local
	if !plan.onlyDir() {
		if local, err = NewLocal(b, plan.Values); err != nil {
			return err
		}
		if plan.Dir != "" {
			if local, err = overlay(plan.Dir, local, plan.Values); err != nil {
				return err
			}
		}
		bindingDir = filepath.Join(tmp, "binding")
		if err := local.Write(bindingDir); err != nil {
			return err
		}
	}

	g, err := gateway.New(gateway.Config{
		Bundle:        b,
		BindingDir:    bindingDir,
		Addr:          addr,
		AdminAddr:     adminAddr,
		Factories:     policy.Factories(),
		Logger:        o.Logger,
		AccessLog:     o.AccessLog,
		ShutdownDelay: -1,
		ShutdownGrace: 5 * time.Second,
	})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- g.Run(runCtx) }()
	if err := waitListening(addr, errc); err != nil {
		return err
	}
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: %w", err)
	default:
	}

	if describe != nil {
		describe(out)
	}
	printSession(out, b, addr, plan, local)
	if ready, why := g.Ready(); !ready {
		fmt.Fprintln(out, "\nThe gateway is not ready, and answers 503 until its Binding has:")
		for _, w := range why {
			fmt.Fprintln(out, "  - "+w)
		}
	}
	fmt.Fprintln(out, "\nCtrl-C stops.")

	select {
	case <-ctx.Done():
		stop()
		err := <-errc
		fmt.Fprintln(out, "stopped")
		return err
	case err := <-errc:
		if err == nil {
			err = errors.New("the gateway stopped")
		}
		return err
	}
}

// resolveAddr turns port 0 into a free port now, so that the URL printed is
// the one served, and finds a port already taken before anything starts
// (another server there would answer the readiness dial, and the gateway's
// own error would not say which flag to change). flag names the address.
func resolveAddr(flag, addr string) (string, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w (choose another with %s, or port 0 for a free one)", flag, addr, err, flag)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return net.JoinHostPort(host, port), nil
}

// mockEndpoint is the name withMockEndpoint gives the routes that name no
// endpoint, unless the definition uses it already.
const mockEndpoint = "gatekiln-mock"

// withMockEndpoint returns b with every route that names no endpoint routed
// to a new endpoint, which the Binding points at the mock like every other,
// and that endpoint's name ("" when every route names one). Without it the
// gateway answers those routes 503, whereas up promises a mock that answers
// every operation. Only the Bundle served here changes: the image (and what
// a cluster runs) keeps routes without an endpoint.
func withMockEndpoint(b *bundle.Bundle) (*bundle.Bundle, string) {
	if routesWithoutEndpoint(b) == 0 {
		return b, ""
	}
	name := mockEndpoint
	for i := 2; ; i++ {
		if _, taken := b.Endpoints[name]; !taken {
			break
		}
		name = fmt.Sprintf("%s-%d", mockEndpoint, i)
	}
	out := *b
	out.Routes = append([]bundle.Route(nil), b.Routes...)
	for i := range out.Routes {
		if out.Routes[i].Endpoint == "" {
			out.Routes[i].Endpoint = name
		}
	}
	out.Endpoints = map[string]bundle.Endpoint{name: {}}
	for n, e := range b.Endpoints {
		out.Endpoints[n] = e
	}
	return &out, name
}

// waitListening returns once addr accepts connections, or with the error the
// gateway stopped with (a port in use, say).
func waitListening(addr string, errc <-chan error) error {
	dial := addr
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		dial = net.JoinHostPort("127.0.0.1", port)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-errc:
			if err == nil {
				err = errors.New("the gateway stopped at once")
			}
			return fmt.Errorf("gateway: %w", err)
		default:
		}
		c, err := net.DialTimeout("tcp", dial, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("gateway: not listening on %s after 10s", addr)
}

// printSession tells a person what is running and how to call it.
func printSession(w io.Writer, b *bundle.Bundle, addr string, plan bindingPlan, local *Local) {
	host := addr
	if h, port, err := net.SplitHostPort(addr); err == nil && (h == "" || h == "0.0.0.0" || h == "::") {
		host = net.JoinHostPort("127.0.0.1", port)
	}
	base := "http://" + host + strings.TrimSuffix(b.API.BasePath, "/")
	if plan.Mock {
		var named []string
		for _, n := range b.EndpointNames() {
			if n != plan.MockEndpoint {
				named = append(named, n)
			}
		}
		names := strings.Join(named, ", ")
		if names == "" {
			names = "none: the definition names no endpoint"
		}
		fmt.Fprintf(w, "  upstream  %s, a mock answering from the definition's examples (endpoints: %s)\n", plan.Values.DefaultURL, names)
	}
	if plan.MockEndpoint != "" {
		n := routesOn(b, plan.MockEndpoint)
		fmt.Fprintf(w, "  note      %d of %d routes name no endpoint (x-gatekiln-endpoint, x-wso2-production-endpoints): here the mock answers them; deployed, the gateway answers them 503\n", n, len(b.Routes))
	}
	if n := routesWithoutEndpoint(b); n > 0 {
		fmt.Fprintf(w, "  note      %d of %d routes name no endpoint (x-gatekiln-endpoint, x-wso2-production-endpoints): the gateway answers them 503\n", n, len(b.Routes))
	}
	if plan.Dir != "" {
		fmt.Fprintf(w, "  binding   %s\n", plan.Dir)
	}
	if local != nil {
		for i, c := range local.Credentials {
			label := "security"
			if i > 0 {
				label = "        "
			}
			fmt.Fprintf(w, "  %s  %s\n", label, describeCredential(c))
		}
		for i, rl := range local.RateLimits {
			label := "limits"
			if i > 0 {
				label = "      "
			}
			fmt.Fprintf(w, "  %s    %s\n", label, rl)
		}
	}
	fmt.Fprintf(w, "\nURL: %s\n", base)
	var creds []Credential
	if local != nil {
		creds = local.Credentials
	}
	if d := PickDemo(b, creds, "http://"+host); d != nil {
		fmt.Fprintln(w, "\nTry it:")
		fmt.Fprintln(w, "  "+d.OK)
		if d.Refused != "" {
			fmt.Fprintf(w, "  %s    # without %s: refused with 401\n", d.Refused, what(creds, d.RefusedBy))
		}
	}
}

func routesWithoutEndpoint(b *bundle.Bundle) int { return routesOn(b, "") }

// routesOn counts the routes that name endpoint ("": none).
func routesOn(b *bundle.Bundle, endpoint string) int {
	n := 0
	for _, r := range b.Routes {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

func what(creds []Credential, scheme string) string {
	for _, c := range creds {
		if c.Scheme == scheme {
			switch c.Type {
			case bundle.SchemeAPIKey:
				return "the API key"
			case bundle.SchemeBasic:
				return "the password"
			case bundle.SchemeJWT, bundle.SchemeOAuth2:
				return "the token"
			}
		}
	}
	return "credentials"
}

func describeCredential(c Credential) string {
	switch c.Type {
	case bundle.SchemeAPIKey:
		return fmt.Sprintf("%s (API key, %s %s): %s", c.Scheme, c.In, c.Name, c.Value)
	case bundle.SchemeBasic:
		return fmt.Sprintf("%s (Basic): user %s, password %s", c.Scheme, c.User, c.Value)
	case bundle.SchemeJWT, bundle.SchemeOAuth2:
		return fmt.Sprintf("%s (bearer JWT, a day): %s", c.Scheme, c.Value)
	case bundle.SchemeMTLS:
		return fmt.Sprintf("%s (mTLS): %s", c.Scheme, c.Note)
	}
	return c.Scheme
}

// overlay starts from the Binding in dir and adds what local has that dir
// lacks, or that the command line gave explicitly; the files dir's Binding
// names are carried over.
func overlay(dir string, local *Local, v Values) (*Local, error) {
	base, err := bundle.LoadBinding(dir)
	if err != nil {
		return nil, err
	}
	out := &Local{Binding: base, Files: map[string][]byte{}}
	for _, f := range base.SecretFiles() {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("binding %s: %w", dir, err)
		}
		out.Files[f] = data
	}
	for name, eb := range local.Binding.Endpoints {
		if _, explicit := v.Endpoints[name]; explicit || len(base.Endpoints[name].URLs) == 0 {
			if base.Endpoints == nil {
				base.Endpoints = map[string]bundle.EndpointBinding{}
			}
			base.Endpoints[name] = eb
		}
	}
	for _, c := range local.Credentials {
		if _, have := base.Security[c.Scheme]; have {
			if _, explicit := v.APIKeys[c.Scheme]; !explicit {
				continue
			}
		}
		if base.Security == nil {
			base.Security = map[string]bundle.SecurityBinding{}
		}
		base.Security[c.Scheme] = local.Binding.Security[c.Scheme]
		out.Credentials = append(out.Credentials, c)
		prefix := "security/" + fileName(c.Scheme) + "/"
		for f, data := range local.Files {
			if strings.HasPrefix(f, prefix) {
				out.Files[f] = data
			}
		}
	}
	for name, rb := range local.Binding.RateLimits {
		if _, have := base.RateLimits[name]; !have {
			if base.RateLimits == nil {
				base.RateLimits = map[string]bundle.RateLimitBinding{}
			}
			base.RateLimits[name] = rb
		}
	}
	// Describe only the limits the directory does not set itself.
	for _, d := range local.RateLimits {
		name, _, _ := strings.Cut(d, ": ")
		if _, inDir := base.RateLimits[name]; !inDir || local.Binding.RateLimits[name] == base.RateLimits[name] {
			out.RateLimits = append(out.RateLimits, d)
		}
	}
	return out, nil
}
