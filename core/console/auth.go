package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"time"
)

// The web console is a local admin page, guarded as one should be:
//   - it listens on 127.0.0.1 only;
//   - a page is opened with a one-time code in its URL (a new one for each
//     `fvm display`, valid for codeTTL), which the host trades, once, for an
//     HttpOnly, SameSite=Strict cookie scoped to that VM's path, and
//     redirects, so the code leaves the address bar and history. The URL is
//     handed to a browser on its command line, which every local user can
//     read in /proc: by the time anyone could, the code is spent or expired.
//     The cookie, the long-lived secret, never appears in a URL;
//   - every request must name the console itself in Host (127.0.0.1:PORT or
//     localhost:PORT), so a DNS-rebound name reaches nothing;
//   - a request with an Origin (every WebSocket from a browser has one) must
//     come from the console's own origin, so no other site can open a VM's
//     screen or serial port in the user's browser (cross-site WebSocket hijacking);
//   - codes and cookies are held in memory only: they die with the host.

// cookieName is the session cookie; its path scopes it to one VM.
const cookieName = "fvm_console"

// codeTTL is how long a console URL's one-time code stays valid unused: long
// enough for a browser to start on a busy machine, or to paste a printed URL.
const codeTTL = 2 * time.Minute

// maxCodes bounds the unused codes of one VM (each `fvm display` adds one).
const maxCodes = 64

// access is one VM's secrets: the unused one-time codes of its URLs (with
// when each expires) and the session cookie value a code buys.
type access struct {
	codes   map[string]time.Time
	session string
}

func newAccess() *access {
	return &access{codes: map[string]time.Time{}, session: randomString()}
}

// newCode mints a one-time code valid until now+codeTTL, dropping expired ones
// (and the oldest, past maxCodes).
func (a *access) newCode(now time.Time) string {
	var oldest string
	for c, exp := range a.codes {
		if !now.Before(exp) {
			delete(a.codes, c)
		} else if oldest == "" || exp.Before(a.codes[oldest]) {
			oldest = c
		}
	}
	if len(a.codes) >= maxCodes {
		delete(a.codes, oldest)
	}
	c := randomString()
	a.codes[c] = now.Add(codeTTL)
	return c
}

// redeem spends code: true, once, for a code minted and not expired.
func (a *access) redeem(code string, now time.Time) bool {
	for c, exp := range a.codes {
		if equal(code, c) {
			delete(a.codes, c) // once, whether in time or not
			return now.Before(exp)
		}
	}
	return false
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
