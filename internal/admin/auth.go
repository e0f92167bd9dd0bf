package admin

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
)

// CookieName is the cookie the UI's login sets: the token itself,
// HttpOnly and SameSite=Strict.
const CookieName = "tinderbox_token"

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
	// AuthCookie: the UI's cookie holds the token.
	AuthCookie
)

// Authenticate says how r authenticated: a bearer header, when present,
// decides alone; otherwise the UI's cookie.
func (a *API) Authenticate(r *http.Request) AuthKind {
	if a.Open() {
		return AuthOpen
	}
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if a.TokenOK(got) {
			return AuthBearer
		}
		return AuthNone
	}
	if c, err := r.Cookie(CookieName); err == nil && a.TokenOK(c.Value) {
		return AuthCookie
	}
	return AuthNone
}

// Open says whether the listener needs no token.
func (a *API) Open() bool { return a.opts.Token == "" }

// TokenOK says whether got (surrounding space ignored) is the token, in
// constant time.
func (a *API) TokenOK(got string) bool {
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(a.opts.Token)) == 1
}

// auth admits a request with the right bearer token, or with the UI's
// cookie holding it. A state-changing request authenticated by the cookie
// must also come from the UI's own origin (SameOrigin): SameSite=Strict
// keeps the cookie off other sites' requests in current browsers, and the
// origin check covers browsers and proxies that do not honour it. A
// bearer header is never sent by a browser on its own, so it needs no
// such check.
func (a *API) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch a.Authenticate(r) {
		case AuthBearer, AuthOpen:
		case AuthCookie:
			if !safeMethod(r.Method) && !SameOrigin(r) {
				RefuseCrossSite(w)
				return
			}
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
// Sec-Fetch-Site says same-origin.
func SameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host && (u.Scheme == "http" || u.Scheme == "https")
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// RefuseCrossSite answers 403 to a cookie-authenticated state change
// from another origin.
func RefuseCrossSite(w http.ResponseWriter) {
	WriteError(w, http.StatusForbidden, "cross-site request refused: the UI's calls must come from its own origin")
}
