package quickstart

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/source"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

const samplePath = "../../samples/petstore/petstore.yaml"

func compileSample(t *testing.T) *compile.Result {
	t.Helper()
	files, err := source.Read(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := compile.Compile(compile.Input{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// session runs fn (Run or Up) in the background and collects what it prints
// until "Ctrl-C stops.".
type session struct {
	lines []string
	url   string
	stop  context.CancelFunc
	done  chan error
}

func start(t *testing.T, fn func(ctx context.Context, out io.Writer) error) *session {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &session{stop: cancel, done: make(chan error, 1)}
	go func() {
		err := fn(ctx, pw)
		pw.Close()
		s.done <- err
	}()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		closed := false
		for sc.Scan() {
			l := sc.Text()
			s.lines = append(s.lines, l)
			if u, ok := strings.CutPrefix(l, "URL: "); ok {
				s.url = u
			}
			if l == "Ctrl-C stops." && !closed {
				close(ready)
				closed = true
			}
		}
		if !closed {
			close(ready)
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatal("no \"Ctrl-C stops.\" line within a minute")
	}
	if s.url == "" {
		cancel()
		t.Fatalf("no URL line; output:\n%s\nerror: %v", strings.Join(s.lines, "\n"), <-s.done)
	}
	t.Cleanup(func() { s.end(t) })
	return s
}

func (s *session) end(t *testing.T) {
	t.Helper()
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("did not stop within 15s of cancel")
	}
}

func get(t *testing.T, url string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// TestRunImageWithBindingDir serves an image from an OCI layout with a
// Binding directory written the way the operator mounts one, and follows a
// change of that directory without a restart.
func TestRunImageWithBindingDir(t *testing.T) {
	res := compileSample(t)
	ctx := context.Background()

	// The image, built by the Direct builder into an OCI layout.
	base, err := quickstartBase()
	if err != nil {
		t.Fatal(err)
	}
	bd, _ := base.Digest()
	layoutDir := filepath.Join(t.TempDir(), "layout")
	reg, err := startRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	repo, _ := reg.Config.ParseRepository(reg.Host + "/apis/petstore")
	req := image.Request{Bundle: res.BundleBytes, InputsDigest: compile.InputsDigest(res.BundleBytes, bd.String(), compile.Version),
		API: "shop/petstore", Version: "1.0.0", Repository: repo, Base: repo.Digest(bd.String())}
	idx, err := image.Assemble(base, req)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := req.Tag()
	if _, err := (image.LayoutPublisher{Path: layoutDir}).Publish(ctx, idx, tag); err != nil {
		t.Fatal(err)
	}

	// Two upstreams that say who they are.
	upstream := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `[{"id":1,"name":"`+name+`:`+r.URL.Path+`"}]`)
		}))
		t.Cleanup(s.Close)
		return s
	}
	one, two := upstream("one"), upstream("two")

	// The Binding directory: endpoint, API key hashes, a JWT key, a rate.
	dir := t.TempDir()
	keys, err := compile.RenderAPIKeys(map[string][]byte{"alice": []byte("alice-key")}, "")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	writeBinding := func(url string) {
		b := &bundle.Binding{
			APIVersion: bundle.BindingAPIVersion,
			Endpoints:  map[string]bundle.EndpointBinding{"petstore-backend": {URLs: []string{url}}},
			Security: map[string]bundle.SecurityBinding{
				"petstore-api-key": {APIKey: &bundle.APIKeyBinding{KeysFile: "keys"}},
				"petstore-jwt":     {JWT: &bundle.JWTBinding{CertificateFile: "jwt.pem"}},
			},
			RateLimits: map[string]bundle.RateLimitBinding{"petstore-standard": {Requests: 100, Period: bundle.Duration(time.Minute)}},
		}
		data, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string][]byte{"keys": keys, "jwt.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})} {
			if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		tmp := filepath.Join(dir, ".binding.json.tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, bundle.BindingFile)); err != nil {
			t.Fatal(err)
		}
	}
	writeBinding(one.URL)

	s := start(t, func(ctx context.Context, out io.Writer) error {
		return Run(ctx, RunOptions{Image: layoutDir + ":" + tag.TagStr(), BindingDir: dir, Serve: ServeOptions{Addr: "127.0.0.1:0", Out: out}})
	})
	if strings.Contains(strings.Join(s.lines, "\n"), "not ready") {
		t.Fatalf("not ready:\n%s", strings.Join(s.lines, "\n"))
	}
	code, body, _ := get(t, s.url+"/pets", map[string]string{"X-API-Key": "alice-key"})
	if code != 200 || !strings.Contains(body, "one:/pets") {
		t.Fatalf("with key: %d %s", code, body)
	}
	if code, body, _ := get(t, s.url+"/pets", nil); code != 401 {
		t.Errorf("without key: %d %s", code, body)
	}

	// A new Binding is picked up while serving.
	writeBinding(two.URL)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body, _ := get(t, s.url+"/pets", map[string]string{"X-API-Key": "alice-key"})
		if strings.Contains(body, "two:/pets") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the changed Binding was not picked up in 15s: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.end(t)
	if last := s.lines[len(s.lines)-1]; last != "stopped" {
		t.Errorf("last line %q, want stopped", last)
	}
}

// TestRunDefinitionWithFlags compiles the sample and serves it with the mock
// and a key given on the command line.
func TestRunDefinitionWithFlags(t *testing.T) {
	s := start(t, func(ctx context.Context, out io.Writer) error {
		return Run(ctx, RunOptions{Files: []string{samplePath}, Mock: true, Credentials: true,
			APIKeys: []string{"petstore-api-key=my-own-key"}, Serve: ServeOptions{Addr: "127.0.0.1:0", Out: out}})
	})
	code, body, h := get(t, s.url+"/pets/7", map[string]string{"X-API-Key": "my-own-key"})
	if code != 200 || h.Get("X-Gatekiln-Mock") != "true" || !strings.Contains(body, `"name":"Rex"`) {
		t.Errorf("GET /pets/7 with the given key: %d %s %v", code, body, h)
	}
	if code, _, _ := get(t, s.url+"/pets/7", map[string]string{"X-API-Key": "another"}); code != 401 {
		t.Errorf("a key not given: %d, want 401", code)
	}
	if code, body, _ := get(t, s.url+"/status", nil); code != 200 || strings.TrimSpace(body) != `{"open":true}` {
		t.Errorf("public /status: %d %s", code, body)
	}
	out := strings.Join(s.lines, "\n")
	if !strings.Contains(out, "petstore-api-key (API key, header X-API-Key): my-own-key") {
		t.Errorf("the given key is not shown:\n%s", out)
	}
}

func TestRunRefusesBadArguments(t *testing.T) {
	ctx := context.Background()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()
	for _, c := range []struct {
		o    RunOptions
		want string
	}{
		{RunOptions{}, "give a definition"},
		{RunOptions{Files: []string{samplePath}, Image: "x"}, "give a definition"},
		{RunOptions{Files: []string{samplePath}, Endpoints: []string{"nourl"}}, `--endpoint "nourl"`},
		{RunOptions{Files: []string{samplePath}, Endpoints: []string{"ghost=http://127.0.0.1:1"}}, `endpoint "ghost"`},
		{RunOptions{Files: []string{samplePath}, Endpoints: []string{"petstore-backend=ftp://x"}}, `ftp://x`},
		{RunOptions{Files: []string{"no-such.yaml"}}, "no-such.yaml"},
		{RunOptions{Image: filepath.Join(t.TempDir(), "missing")}, "missing"},
		{RunOptions{Files: []string{samplePath}, Serve: ServeOptions{Addr: "nonsense"}}, `--addr "nonsense"`},
		{RunOptions{Files: []string{samplePath}, Serve: ServeOptions{Addr: busy}}, "--addr " + busy + ": "},
		{RunOptions{Files: []string{samplePath}, Serve: ServeOptions{Addr: "127.0.0.1:0", AdminAddr: "nonsense"}}, `--admin-addr "nonsense"`},
		{RunOptions{Files: []string{samplePath}, Serve: ServeOptions{Addr: "127.0.0.1:0", AdminAddr: busy}}, "--admin-addr " + busy + ": "},
	} {
		err := Run(ctx, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%+v) = %v, want an error naming %q", c.o, err, c.want)
		}
	}
}

// TestRunOverlaysFlagsOnBindingDir keeps what the directory sets (here the
// endpoint) and fills in from flags what it lacks (credentials, the rate).
func TestRunOverlaysFlagsOnBindingDir(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":5,"name":"from-dir"}`)
	}))
	defer up.Close()
	dir := t.TempDir()
	b := &bundle.Binding{APIVersion: bundle.BindingAPIVersion,
		Endpoints: map[string]bundle.EndpointBinding{"petstore-backend": {URLs: []string{up.URL}}}}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.BindingFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, func(ctx context.Context, out io.Writer) error {
		return Run(ctx, RunOptions{Files: []string{samplePath}, BindingDir: dir, Mock: true, Credentials: true,
			APIKeys: []string{"petstore-api-key=k"}, Serve: ServeOptions{Addr: "127.0.0.1:0", Out: out}})
	})
	out := strings.Join(s.lines, "\n")
	if strings.Contains(out, "not ready") {
		t.Fatalf("not ready:\n%s", out)
	}
	code, body, h := get(t, s.url+"/pets/5", map[string]string{"X-API-Key": "k"})
	if code != 200 || !strings.Contains(body, "from-dir") || h.Get("X-Gatekiln-Mock") != "" {
		t.Errorf("the directory's endpoint should win over the mock: %d %s", code, body)
	}
	if !strings.Contains(out, "petstore-standard: 1000 per minute") {
		t.Errorf("the rate the flags added is not described:\n%s", out)
	}
}
