package gateway

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// accessLog writes one JSON line per request through slog, into a buffer that
// is flushed every second (and when full), so logging costs no write syscall
// per request.
type accessLog struct {
	mu     sync.Mutex
	bw     *bufio.Writer
	logger *slog.Logger
}

func newAccessLog(w io.Writer) *accessLog {
	a := &accessLog{}
	a.bw = bufio.NewWriterSize(w, 64<<10)
	a.logger = slog.New(slog.NewJSONHandler(lockedWriter{a}, nil))
	go func() {
		for range time.Tick(time.Second) {
			a.flush()
		}
	}()
	return a
}

type lockedWriter struct{ a *accessLog }

// Write is called by the JSON handler, which serialises its own writes; the
// mutex orders them against flush.
func (l lockedWriter) Write(p []byte) (int, error) {
	l.a.mu.Lock()
	defer l.a.mu.Unlock()
	return l.a.bw.Write(p)
}

func (a *accessLog) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.bw.Flush()
}

func (a *accessLog) log(r *http.Request, route string, status int, written int64, d time.Duration) {
	a.logger.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("request_id", r.Header.Get("X-Request-Id")),
		slog.String("remote", r.RemoteAddr),
		slog.String("method", r.Method),
		slog.String("path", r.URL.EscapedPath()),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int64("bytes", written),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("proto", r.Proto),
		slog.String("user_agent", r.UserAgent()),
	)
}
