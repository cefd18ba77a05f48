// Package redistest runs a real redis-server (the Debian package
// redis-server, listed in hack/apt-packages.txt) for the duration of a test:
// the store of the gateway's global rate limits. A test can stop it and start
// it again on the same address, as an outage would.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server the test started.
type Server struct {
	// Addr is host:port.
	Addr string

	bin, dir string
	// extra are more redis-server arguments (cluster mode).
	extra []string
	cmd   *exec.Cmd
}

// Start runs redis-server on a free port of host (127.0.0.1 when empty) with
// no persistence; t.Cleanup stops it. It fails the test with a clear message
// when redis-server is not installed.
func Start(tb testing.TB, host string) *Server {
	tb.Helper()
	return start(tb, host)
}

func start(tb testing.TB, host string, extra ...string) *Server {
	tb.Helper()
	if host == "" {
		host = "127.0.0.1"
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server is not installed (Debian package redis-server, listed in hack/apt-packages.txt): %v", err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		tb.Fatalf("redistest: a free port on %s: %v", host, err)
	}
	s := &Server{Addr: l.Addr().String(), bin: bin, dir: tb.TempDir(), extra: extra}
	l.Close()
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartCluster runs a Redis Cluster of n masters on 127.0.0.1 (no replicas),
// the hash slots split evenly between them, and waits until every node
// reports the cluster ok. t.Cleanup stops it.
func StartCluster(tb testing.TB, n int) []*Server {
	tb.Helper()
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = start(tb, "", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000")
	}
	ctx := context.Background()
	const slots = 16384
	for i, s := range nodes {
		c := s.Client()
		err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", i*slots/n, (i+1)*slots/n-1).Err()
		if err == nil && i > 0 {
			host, port, _ := net.SplitHostPort(nodes[0].Addr)
			err = c.Do(ctx, "CLUSTER", "MEET", host, port).Err()
		}
		_ = c.Close()
		if err != nil {
			tb.Fatalf("redistest: cluster node %s: %v", s.Addr, err)
		}
	}
	for _, s := range nodes {
		c := s.Client()
		var info string
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			info, _ = c.ClusterInfo(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d\r", n)) {
				break
			}
			if time.Now().After(deadline) {
				_ = c.Close()
				tb.Fatalf("redistest: cluster node %s not ok after 20s:\n%s", s.Addr, info)
			}
		}
		_ = c.Close()
	}
	return nodes
}

// Restart starts the server again on its address, empty, after Stop.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if s.cmd != nil {
		return
	}
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
}

// Stop kills the server at once, as a crash would. It may be called more
// than once.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	s.cmd = nil
}

// Running says whether the server was started and not stopped since.
func (s *Server) Running() bool { return s.cmd != nil }

// Client is a client of the server; the caller closes it.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true, MaxRetries: -1})
}

func (s *Server) start() error {
	host, port, _ := net.SplitHostPort(s.Addr)
	// Protected mode refuses clients from other addresses without a password;
	// on a non-loopback address (a cluster node's bridge) the clients are Pods.
	args := append([]string{"--bind", host, "--port", port, "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--protected-mode", "no"}, s.extra...)
	s.cmd = exec.Command(s.bin, args...)
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return fmt.Errorf("start redis-server: %w", err)
	}
	c := s.Client()
	defer func() { _ = c.Close() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c.Ping(context.Background()).Err() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("redis-server at %s does not answer PING after 10s", s.Addr)
		}
	}
}
