package quickstart

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/mock"
)

// TestUpQuickStart runs the README's first command as a user does — the
// built gatekiln binary, `up samples/petstore/petstore.yaml` from the
// repository root — waits for the URL, runs the two curl commands it prints
// with the real curl, and stops it with Ctrl-C (SIGINT).
func TestUpQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gatekiln binary; skipped in -short mode")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is missing: apt-get install curl (it is in hack/apt-packages.txt)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "gatekiln")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gatekiln")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build gatekiln: %v\n%s", err, out)
	}
	fake := filepath.Join(t.TempDir(), "gatekiln-gateway")
	if err := os.WriteFile(fake, []byte("#!stands in for a static gateway binary\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		extra []string
		base  string
	}{
		{"bundle-only base", nil, BaseBundleOnly},
		{"runtime base around a gateway binary", []string{"--gateway-binary", fake}, BaseRuntime},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"up", "--addr", "127.0.0.1:0"}, c.extra...)
			cmd := exec.Command(bin, append(args, "samples/petstore/petstore.yaml")...)
			cmd.Dir = root
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill() }()
			lines := make(chan string, 100)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()

			var out []string
			var base string
			var curls []string
			timeout := time.After(90 * time.Second)
		read:
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("gatekiln up exited early:\n%s\nstderr:\n%s", strings.Join(out, "\n"), stderr.String())
					}
					out = append(out, l)
					if u, ok := strings.CutPrefix(l, "URL: "); ok {
						base = u
					}
					if c, ok := strings.CutPrefix(l, "  curl "); ok {
						curls = append(curls, "curl "+c)
					}
					if l == "Ctrl-C stops." {
						break read
					}
				case <-timeout:
					t.Fatalf("no URL within 90s:\n%s\nstderr:\n%s", strings.Join(out, "\n"), stderr.String())
				}
			}
			text := strings.Join(out, "\n")
			if base == "" || len(curls) != 2 {
				t.Fatalf("want a URL line and two curl lines:\n%s", text)
			}
			if !strings.Contains(text, "base: "+c.base) {
				t.Errorf("output does not name the base %q:\n%s", c.base, text)
			}
			u, err := url.Parse(base)
			if err != nil || u.Path != "/v1" {
				t.Fatalf("URL %q: want the gateway's base path /v1", base)
			}

			// The first works, with the generated key, and the answer is the
			// definition's example served by the mock through the gateway.
			status, headers, body := curl(t, curls[0])
			if status != 200 || !strings.Contains(headers, "X-Gatekiln-Mock: true") || strings.TrimSpace(body) != `[{"id":1,"name":"Rex","tag":"dog"}]` {
				t.Errorf("%s\n→ %d\n%s\n%s", curls[0], status, headers, body)
			}
			if !strings.Contains(curls[0], "X-API-Key: gk_") {
				t.Errorf("the working curl line carries no generated API key: %s", curls[0])
			}
			// The second is refused: no API key.
			status, headers, body = curl(t, curls[1])
			if status != 401 || !strings.Contains(headers, "application/problem+json") || !strings.Contains(body, "petstore-api-key") {
				t.Errorf("%s\n→ %d\n%s\n%s", curls[1], status, headers, body)
			}

			// Ctrl-C stops everything cleanly.
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			var rest []string
			for l := range lines {
				rest = append(rest, l)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("exit after Ctrl-C: %v\nstderr:\n%s", err, stderr.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatal("gatekiln up did not stop within 15s of Ctrl-C")
			}
			if len(rest) == 0 || rest[len(rest)-1] != "stopped" {
				t.Errorf("after Ctrl-C: %q, want a last line \"stopped\"", rest)
			}
			if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
				c.Close()
				t.Errorf("the gateway still accepts connections on %s after stopping", u.Host)
			}
		})
	}
}

// curl runs a printed curl line through the shell exactly as a user pastes
// it (its progress meter goes to stderr, which is dropped).
func curl(t *testing.T, line string) (status int, headers, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", line).Output()
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
	first, _, _ := strings.Cut(head, "\n")
	fields := strings.Fields(first)
	if len(fields) < 2 {
		t.Fatalf("%s: no status line in %q", line, out)
	}
	var code int
	for _, ch := range fields[1] {
		code = code*10 + int(ch-'0')
	}
	return code, head, body
}

// corpusPetstore is the corpus's petstore: no operation names an endpoint.
func corpusPetstore(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "corpus", "oas-examples", "3.0", "petstore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("corpus not found beside the repository: %v", err)
	}
	return p
}

// TestUpWithoutEndpoints: up on a definition that names no endpoint still
// answers from the mock, and the curl it prints works as printed.
func TestUpWithoutEndpoints(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is missing: apt-get install curl (it is in hack/apt-packages.txt)")
	}
	def := corpusPetstore(t)
	s := start(t, func(ctx context.Context, out io.Writer) error {
		return Up(ctx, UpOptions{Files: []string{def}, Serve: ServeOptions{Addr: "127.0.0.1:0", Out: out}})
	})
	text := strings.Join(s.lines, "\n")
	var curls []string
	for _, l := range s.lines {
		if c, ok := strings.CutPrefix(l, "  curl "); ok {
			curls = append(curls, "curl "+c)
		}
	}
	if len(curls) != 2 {
		t.Fatalf("want two curl lines:\n%s", text)
	}
	status, headers, body := curl(t, curls[0])
	if status != 200 || !strings.Contains(headers, mock.Header+": true") {
		t.Errorf("%s\n→ %d\n%s\n%s", curls[0], status, headers, body)
	}
	if status, _, body := curl(t, curls[1]); status != 401 {
		t.Errorf("%s\n→ %d, want 401\n%s", curls[1], status, body)
	}
	if !strings.Contains(text, "20 of 20 routes name no endpoint") || !strings.Contains(text, "here the mock answers them") {
		t.Errorf("the output does not say the mock answers the routes without an endpoint:\n%s", text)
	}
}

func TestWithMockEndpoint(t *testing.T) {
	routes := func(eps ...string) []bundle.Route {
		var out []bundle.Route
		for i, e := range eps {
			out = append(out, bundle.Route{Method: "GET", Path: "/r" + strconv.Itoa(i), Endpoint: e})
		}
		return out
	}
	tests := []struct {
		name      string
		in        *bundle.Bundle
		wantName  string
		wantRoute []string
	}{
		{"every route names one", &bundle.Bundle{Routes: routes("a", "a"), Endpoints: map[string]bundle.Endpoint{"a": {}}}, "", []string{"a", "a"}},
		{"none named", &bundle.Bundle{Routes: routes("", "")}, "gatekiln-mock", []string{"gatekiln-mock", "gatekiln-mock"}},
		{"some named", &bundle.Bundle{Routes: routes("a", ""), Endpoints: map[string]bundle.Endpoint{"a": {}}}, "gatekiln-mock", []string{"a", "gatekiln-mock"}},
		{"the name is taken", &bundle.Bundle{Routes: routes("gatekiln-mock", ""), Endpoints: map[string]bundle.Endpoint{"gatekiln-mock": {}}}, "gatekiln-mock-2", []string{"gatekiln-mock", "gatekiln-mock-2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := fmt.Sprintf("%+v", *tc.in)
			out, name := withMockEndpoint(tc.in)
			if name != tc.wantName {
				t.Errorf("name %q, want %q", name, tc.wantName)
			}
			var got []string
			for _, r := range out.Routes {
				got = append(got, r.Endpoint)
				if _, ok := out.Endpoints[r.Endpoint]; !ok {
					t.Errorf("route %s names undeclared endpoint %q", r.Path, r.Endpoint)
				}
			}
			if !reflect.DeepEqual(got, tc.wantRoute) {
				t.Errorf("route endpoints %v, want %v", got, tc.wantRoute)
			}
			if after := fmt.Sprintf("%+v", *tc.in); after != before {
				t.Errorf("the Bundle given was changed:\n%s\n%s", before, after)
			}
		})
	}
}
