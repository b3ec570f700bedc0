package sdk

import (
	"net/http"
	"time"
)

// MaxIdleConnsPerHost is how many idle keep-alive connections the client
// of NewHTTPClient keeps per provider host.
const MaxIdleConnsPerHost = 64

// NewHTTPClient returns an HTTP client for a provider's API: Go's default
// transport (proxy from the environment, HTTP/2, the same timeouts) except
// that it keeps up to MaxIdleConnsPerHost idle connections per host
// instead of 2. The hub calls a plugin concurrently (one call per
// conversation being answered); with 2 idle connections, every call beyond
// them opened a new TCP and TLS connection and closed it afterwards. A
// timeout of 0 means none (per-call contexts carry the deadline).
func NewHTTPClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 4 * MaxIdleConnsPerHost
	t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
	return &http.Client{Transport: t, Timeout: timeout}
}
