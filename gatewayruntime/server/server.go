// Package server is the gateway's listener: an HTTP/1.1 server written for the
// proxy's hot path, TLS termination, HTTP/2 (via golang.org/x/net/http2) for
// clients that negotiate it (net/http's server, handed the TLS connections
// that chose "h2"), connection limits and graceful shutdown.
//
// Why not net/http's server for HTTP/1.1: per request it starts a background
// read goroutine, builds a fresh Request, Header and bufio state and sniffs
// bodies; on a proxy that shares one core with its upstream that alone costs
// more CPU than nginx spends proxying. This server reuses one *http.Request,
// Header map and ResponseWriter per connection, parses with package http1 and
// lets the proxy copy an upstream head straight into the client's buffer.
// Handlers still see plain net/http types, with these differences (documented
// on Config.Handler).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn"
)

// Config configures a Server. Zero durations and sizes take the defaults below.
type Config struct {
	// Handler serves every request. On HTTP/1.1 connections the *http.Request,
	// its Header map and URL are reused for the connection's next request, and
	// the request context is the connection's (cancelled when the server stops,
	// not when the client goes away): handlers must not keep them after
	// returning. Response headers are written in map order and a missing
	// Content-Type is not sniffed. Hijack works for requests that carry an
	// Upgrade field (the others are served from inside the socket's read).
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request head, from its first byte
	// (slowloris): default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive connection: default 120s.
	IdleTimeout time.Duration
	// BodyIdleTimeout bounds a request body read that makes no progress: default 60s.
	BodyIdleTimeout time.Duration
	// MaxHeaderBytes bounds a request head; larger heads get 431: default 32 KiB.
	MaxHeaderBytes int
	// Logger receives connection-level errors at debug level, and failures to
	// accept (out of descriptors) at warn level.
	Logger *slog.Logger
	// Rejected, if set, is told the status of every request refused before it
	// reached the Handler (malformed, oversized or timed-out heads); the
	// request id it returns (if any) goes in the refusal, as in the
	// Handler's own errors.
	Rejected func(status int) (requestID string)
	// Loop serves plain HTTP/1.1 connections as coroutines of the rawconn
	// poller (see rawconn.Coro) when rawconn.Loop allows it. Only for a
	// Handler that waits on nothing but the request's connections, its own
	// rawconn upstream connections and short locks, or calls
	// rawconn.Detach(r.Context()) first: anything else holds up every
	// connection of the loop.
	Loop bool
}

const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultIdleTimeout       = 120 * time.Second
	defaultBodyIdleTimeout   = 60 * time.Second
	defaultMaxHeaderBytes    = 32 << 10
)

// Server serves HTTP/1.1 on plain listeners and HTTP/1.1 or HTTP/2 on TLS listeners.
type Server struct {
	cfg Config

	// h2 serves the TLS connections that negotiated HTTP/2, fed through h2ln.
	h2   *http.Server
	h2ln *connListener

	baseCtx context.Context
	cancel  context.CancelFunc

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
	draining  atomic.Bool
	closing   atomic.Bool // Drain
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = defaultReadHeaderTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	if cfg.BodyIdleTimeout <= 0 {
		cfg.BodyIdleTimeout = defaultBodyIdleTimeout
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		baseCtx:   ctx,
		cancel:    cancel,
		listeners: map[*net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	s.h2 = &http.Server{
		Handler:           cfg.Handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		Protocols:         protos,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	s.h2ln = newConnListener()
	go func() { _ = s.h2.Serve(s.h2ln) }()
	return s
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts plain-text HTTP/1.1 connections on ln until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, nil) }

// ServeTLS accepts TLS connections on ln. Clients that negotiate "h2" by ALPN
// get HTTP/2; others HTTP/1.1. cfg should have GetConfigForClient or
// GetCertificate set for certificate reloads; its NextProtos are set here.
func (s *Server) ServeTLS(ln net.Listener, cfg *tls.Config) error {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return s.serve(ln, cfg)
}

func (s *Server) serve(ln net.Listener, tlsCfg *tls.Config) error {
	if tl, ok := ln.(*net.TCPListener); ok && tlsCfg == nil && rawconn.Polled {
		// Plain HTTP/1.1 connections go on the rawconn poller.
		if pl, err := rawconn.Listen(tl); err == nil {
			ln = pl
		}
	}
	if !s.track(&ln, true) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.track(&ln, false)
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.draining.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if delay == 0 {
					// Once per streak: out of descriptors, say, until connections close.
					s.cfg.Logger.Warn("cannot accept connections; retrying", "err", err)
				}
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		nc = rawconn.Wrap(nc)
		c := newConn(s, nc, tlsCfg)
		if !s.trackConn(c, true) {
			nc.Close()
			continue
		}
		if s.cfg.Loop {
			rawconn.Go(nc, c.serve)
		} else {
			go c.serve(nil)
		}
	}
}

func (s *Server) track(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.draining.Load() {
			return false
		}
		s.listeners[ln] = struct{}{}
		return true
	}
	delete(s.listeners, ln)
	return true
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.draining.Load() {
			return false
		}
		s.conns[c] = struct{}{}
		return true
	}
	delete(s.conns, c)
	return true
}

// Draining reports whether Shutdown has begun; responses then carry
// "Connection: close".
func (s *Server) Draining() bool { return s.draining.Load() }

// Drain makes HTTP/1.1 responses carry "Connection: close" from now on,
// while the server still accepts and serves: what a gateway does between
// SIGTERM and Shutdown, so that keep-alive clients reconnect (to another
// replica, once the endpoints say so) rather than find their connection
// closed under a request at Shutdown.
func (s *Server) Drain() { s.closing.Store(true) }

// Shutdown stops accepting, closes idle connections, lets requests in flight
// finish (their responses close the connection; HTTP/2 clients get GOAWAY) and
// returns when every connection is gone or ctx ends, closing what remains.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	for ln := range s.listeners {
		(*ln).Close()
	}
	s.mu.Unlock()
	h2done := make(chan error, 1)
	// GOAWAY to HTTP/2 connections; returns when their streams are done.
	go func() { h2done <- s.h2.Shutdown(ctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			c.closeIfIdle()
		}
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			err := <-h2done
			s.cancel()
			return err
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes listeners and every connection at once.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining.Store(true)
	for ln := range s.listeners {
		(*ln).Close()
	}
	for c := range s.conns {
		// Close waits for the connection's reads to return, and a handler
		// running inside its raw read (serveInline) returns when it is done.
		go c.raw.Close()
	}
	_ = s.h2.Close()
	s.cancel()
}

// connListener hands connections to an http.Server.
type connListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// push hands over a TLS connection that negotiated h2; the HTTP/2 server
// sees the handshake done and serves it.
func (l *connListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}
