package registry

import (
	"net"
	"net/url"
	"os"
	"testing"
)

// TestExplainKeepsRetries: go-containerregistry retries a request whose
// error says it is temporary (a dial timeout); naming the registry in the
// error must not turn that retry off.
func TestExplainKeepsRetries(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	if !dial.Temporary() {
		t.Fatal("a dial timeout is not temporary: the test proves nothing")
	}
	err := &url.Error{Op: "Get", URL: "https://r.example/v2/", Err: explain("r.example", "https", dial)}
	if !err.Temporary() || !err.Timeout() {
		t.Errorf("%v: Temporary %v, Timeout %v; want both", err, err.Temporary(), err.Timeout())
	}
}
