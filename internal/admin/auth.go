package admin

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// CookieName is the cookie the UI's login sets: a random session id
// (never the token), HttpOnly and SameSite=Strict, valid for SessionTTL.
const CookieName = "tinderbox_session"

// AuthKind is how a request proved it may call the API.
type AuthKind int

// How a request authenticated.
const (
	// AuthNone: it did not.
	AuthNone AuthKind = iota
	// AuthOpen: the listener needs no token.
	AuthOpen
	// AuthBearer: the Authorization header holds the token.
	AuthBearer
	// AuthCookie: the UI's cookie names a live session.
	AuthCookie
	// AuthThrottled: it sent a bearer token, but its source failed too
	// often lately (FailureBurst); the token was not looked at.
	AuthThrottled
)

// Authenticate says how r authenticated: a bearer header, when present,
// decides alone; otherwise the UI's session cookie. A wrong bearer token
// is logged at Warn and counts against r's source (see FailureBurst).
func (a *API) Authenticate(r *http.Request) AuthKind {
	kind, _ := a.authenticate(r)
	return kind
}

// authenticate is Authenticate, with how long a throttled source must
// wait.
func (a *API) authenticate(r *http.Request) (AuthKind, time.Duration) {
	if a.Open() {
		return AuthOpen, 0
	}
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if wait := a.throttle.wait(source(r)); wait > 0 {
			return AuthThrottled, wait
		}
		if a.tokenOK(got) {
			return AuthBearer, 0
		}
		a.failed(r, "bearer token")
		return AuthNone, 0
	}
	if c, err := r.Cookie(CookieName); err == nil && a.sessions.valid(c.Value) {
		return AuthCookie, 0
	}
	return AuthNone, 0
}

// Open says whether the listener needs no token.
func (a *API) Open() bool { return a.opts.Token == "" }

// tokenOK says whether got (surrounding space ignored) is the token, in
// constant time.
func (a *API) tokenOK(got string) bool {
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(a.opts.Token)) == 1
}

// failed logs a failed attempt (never the token sent) and counts it
// against r's source.
func (a *API) failed(r *http.Request, what string) {
	a.log.Warn("admin: wrong "+what, "remote", r.RemoteAddr, "path", r.URL.Path)
	if a.throttle.fail(source(r)) {
		a.log.Warn("admin: too many failed attempts from this source; refusing its tokens for a while",
			"remote", r.RemoteAddr, "retry_after", retryAfter(a.throttle.wait(source(r))))
	}
}

// ErrWrongToken is Login's answer to a token that is not admin.tokenFile's.
var ErrWrongToken = errors.New("wrong token")

// ThrottledError is Login's answer to a source that failed too often
// lately: it may try again after RetryAfter.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed attempts from this address; try again in %d s", e.Seconds())
}

// Seconds is RetryAfter in whole seconds, rounded up, at least 1: the
// Retry-After header's value.
func (e *ThrottledError) Seconds() int { return retryAfter(e.RetryAfter) }

// Login checks a token typed into the UI's login page by r's sender and
// starts a session: the cookie to set holds the session's random id.
// It fails with *ThrottledError when r's source failed too often lately
// (without looking at token), or ErrWrongToken, which is logged at Warn
// and counted against the source. Not for an open listener, which has no
// token to check.
func (a *API) Login(r *http.Request, token string) (*http.Cookie, error) {
	if wait := a.throttle.wait(source(r)); wait > 0 {
		return nil, &ThrottledError{RetryAfter: wait}
	}
	if a.Open() || !a.tokenOK(token) {
		a.failed(r, "login token")
		return nil, ErrWrongToken
	}
	id, exp := a.sessions.start()
	return &http.Cookie{
		Name: CookieName, Value: id, Path: "/", Expires: exp, MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}, nil
}

// Logout ends the session r's cookie names, if any, and returns the
// cookie that clears it in the browser.
func (a *API) Logout(r *http.Request) *http.Cookie {
	if c, err := r.Cookie(CookieName); err == nil {
		a.sessions.end(c.Value)
	}
	return &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// auth admits a request with the right bearer token, or with the UI's
// session cookie, or any request on an open listener; state changes are
// held to the rules below.
//
// A bearer header is never sent by a browser on its own, so it needs no
// origin check. A state-changing request authenticated by the cookie
// must come from the UI's own origin (SameOrigin): SameSite=Strict keeps
// the cookie off other sites' requests in current browsers, and the
// origin check covers browsers and proxies that do not honour it. On an
// open listener any page the operator's browser shows could send a
// request, so a state change is refused when the browser says it comes
// from another site (crossSite); a client that names no origin at all
// (the CLI, curl, pkg/client) is no browser and is let through.
func (a *API) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, wait := a.authenticate(r)
		switch kind {
		case AuthBearer:
		case AuthOpen:
			if !safeMethod(r.Method) && crossSite(r) {
				a.log.Info("admin: cross-site state change refused", "remote", r.RemoteAddr, "path", r.URL.Path,
					"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
				RefuseCrossSite(w)
				return
			}
		case AuthCookie:
			if !safeMethod(r.Method) && !SameOrigin(r) {
				RefuseCrossSite(w)
				return
			}
		case AuthThrottled:
			refuseThrottled(w, wait)
			return
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="tinderbox"`)
			WriteError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// SameOrigin says the request comes from a page of this listener: its
// Origin names this host, or, without an Origin, the browser's
// Sec-Fetch-Site says same-origin. A request with neither header is not
// same-origin.
func SameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return originIsHost(o, r.Host)
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// crossSite says a browser marked the request as coming from somewhere
// other than this listener's own pages: an Origin header that does not
// name this host (including "null"), or a Sec-Fetch-Site other than
// same-origin or none (a typed URL or bookmark). A request with neither
// header is not cross-site: browsers send at least one on every
// state-changing request, other clients send neither.
func crossSite(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && !originIsHost(o, r.Host) {
		return true
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return false
	}
	return true
}

// originIsHost says the Origin header o is http(s)://host, host being the
// request's Host header (which Hosts.Middleware has checked names this
// listener).
func originIsHost(o, host string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && strings.EqualFold(u.Host, host) &&
		u.Path == "" && u.User == nil
}

// RefuseCrossSite answers 403 to a state change from another origin.
func RefuseCrossSite(w http.ResponseWriter) {
	WriteError(w, http.StatusForbidden, "cross-site request refused: state changes on the admin listener must come from its own pages "+
		"(a browser's Origin or Sec-Fetch-Site header named another site)")
}

// refuseThrottled answers 429 with Retry-After to a source that failed
// too often lately.
func refuseThrottled(w http.ResponseWriter, wait time.Duration) {
	s := retryAfter(wait)
	w.Header().Set("Retry-After", strconv.Itoa(s))
	WriteError(w, http.StatusTooManyRequests, fmt.Sprintf("too many failed attempts from this address; try again in %d s", s))
}
