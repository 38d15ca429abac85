package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
)

// The web console is a local admin page, guarded as one should be:
//   - it listens on 127.0.0.1 only;
//   - a page is opened with a per-VM random token in its URL, which the host
//     trades for an HttpOnly, SameSite=Strict cookie scoped to that VM's path
//     (and redirects, so the token leaves the address bar and history);
//   - every request must name the console itself in Host (127.0.0.1:PORT or
//     localhost:PORT), so a DNS-rebound name reaches nothing;
//   - a request with an Origin (every WebSocket from a browser has one) must
//     come from the console's own origin, so no other site can open a VM's
//     screen or serial port in the user's browser (cross-site WebSocket hijacking);
//   - tokens and cookies are held in memory only: they die with the host.

// cookieName is the session cookie; its path scopes it to one VM.
const cookieName = "fvm_console"

// access is one VM's secrets: the token in its URL and the cookie value it buys.
type access struct {
	token, session string
}

func newAccess() *access {
	return &access{token: randomString(), session: randomString()}
}

// randomString is 256 random bits, URL-safe.
func randomString() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return base64.RawURLEncoding.EncodeToString(b)
}

func equal(a, b string) bool {
	return len(a) > 0 && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// hostAllowed reports whether a request's Host names this console.
func hostAllowed(host string, port int) bool {
	for _, h := range allowedHosts(port) {
		if host == h {
			return true
		}
	}
	return false
}

func allowedHosts(port int) []string {
	p := itoa(port)
	return []string{"127.0.0.1:" + p, "localhost:" + p}
}

// originAllowed: no Origin (not a browser, or a same-origin GET), or exactly
// the page's own, http://HOST with the Host already checked.
func originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Scheme == "http" && u.Host == r.Host && u.Path == "" && u.User == nil
}

func vmPath(name string) string { return "/vm/" + url.PathEscape(name) + "/" }

func sessionCookie(name, value string) *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: value, Path: vmPath(name),
		HttpOnly: true, SameSite: http.SameSiteStrictMode}
}
