package serve

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync/atomic"

	"github.com/gin-gonic/gin"
)

// browserPolicy keeps web pages away from a server they should not reach, as Ollama's
// OLLAMA_ORIGINS and host check do. A keyless server on 127.0.0.1 is reachable from every
// page its user opens: a page may post a form or a text/plain body without a CORS preflight,
// and a page on a name its owner rebinds to 127.0.0.1 even reads the answers. So:
//   - a request whose Origin header is not the server's own origin, nor one AllowOrigins
//     names, is refused (browsers send Origin with every cross-origin request and every
//     POST);
//   - a state-changing request (POST, PUT, PATCH, DELETE with a body) must be
//     application/json, which a page cannot send cross-origin without a preflight that the
//     origin check refuses;
//   - while the server listens on a loopback address, the Host header must name it:
//     localhost, an IP address, the machine's name, or one of AllowHosts.
//
// Allowed origins get CORS headers and their preflights are answered.
type browserPolicy struct {
	anyOrigin bool
	origins   map[string]bool // scheme://host[:port], lower case
	anyHost   bool
	hosts     []string // names, and ".suffix" patterns
	hostname  string
	// checkHost is set while the server listens on loopback (and by default, for Handler).
	checkHost *atomic.Bool
}

func newBrowserPolicy(origins, hosts []string) (browserPolicy, error) {
	p := browserPolicy{origins: map[string]bool{}, checkHost: &atomic.Bool{}}
	p.checkHost.Store(true)
	for _, o := range origins {
		o = strings.ToLower(strings.TrimRight(strings.TrimSpace(o), "/"))
		switch {
		case o == "":
		case o == "*":
			p.anyOrigin = true
		default:
			u, err := url.Parse(o)
			if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
				return p, fmt.Errorf("allowed origin %q: want scheme://host[:port] or *", o)
			}
			p.origins[o] = true
		}
	}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case h == "":
		case h == "*":
			p.anyHost = true
		default:
			p.hosts = append(p.hosts, h)
		}
	}
	if name, err := os.Hostname(); err == nil {
		p.hostname = strings.ToLower(name)
	}
	return p, nil
}

// listening tells the policy the address the server listens on: the Host check applies on
// loopback only, unless AllowHosts names hosts.
func (p browserPolicy) listening(addr net.Addr) {
	ap, err := netip.ParseAddrPort(addr.String())
	p.checkHost.Store(err != nil || ap.Addr().IsLoopback() || len(p.hosts) > 0)
}

// hostAllowed reports whether a Host header value (host[:port]) may be answered.
func (p browserPolicy) hostAllowed(hostport string) bool {
	if p.anyHost || !p.checkHost.Load() {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if _, err := netip.ParseAddr(host); err == nil {
		return true // rebinding needs a name; an address is what the client dialled
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || host == p.hostname {
		return true
	}
	for _, h := range p.hosts {
		if host == h || strings.HasPrefix(h, ".") && (strings.HasSuffix(host, h) || host == h[1:]) {
			return true
		}
	}
	return false
}

// originAllowed reports whether a request with this Origin (not empty) may be answered, and
// whether it needs CORS headers (it is not the server's own origin).
func (p browserPolicy) originAllowed(origin string, r *http.Request) (ok, cors bool) {
	o := strings.ToLower(origin)
	u, err := url.Parse(o)
	if err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return true, false // same origin
	}
	if o == "null" {
		return false, false // sandboxed frames and file:// pages: never trusted
	}
	return p.anyOrigin || p.origins[o], true
}

// stateChanging reports whether a request can change the server's state.
func stateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// guardBrowser applies the policy (see browserPolicy). It runs before routing's handlers,
// authentication included, so that a refused page learns nothing else.
func (s *Server) guardBrowser(c *gin.Context) {
	p, r := s.browser, c.Request
	if !p.hostAllowed(r.Host) {
		writeError(c, fmt.Errorf("%w: Host %q is not this server's name; start it with --allow-host %s to answer it",
			ErrOrigin, r.Host, hostOnly(r.Host)))
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		ok, cors := p.originAllowed(origin, r)
		if !ok {
			writeError(c, fmt.Errorf("%w: requests from %s are refused; start the server with --allow-origin %s to allow them",
				ErrOrigin, origin, origin))
			return
		}
		if cors {
			h := c.Writer.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, DELETE, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept")
				h.Set("Access-Control-Max-Age", "600")
				c.AbortWithStatus(http.StatusNoContent)
				return
			}
		}
	}
	if stateChanging(r.Method) && (r.ContentLength != 0 || r.Header.Get("Content-Type") != "" || r.Method == http.MethodPost) {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			got := r.Header.Get("Content-Type")
			if got == "" {
				got = "none"
			}
			writeError(c, fmt.Errorf("%w: %s %s takes Content-Type: application/json (got %s)", ErrMediaType, r.Method, r.URL.Path, got))
			return
		}
	}
	c.Next()
}

// hostOnly is the host of a host[:port].
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
