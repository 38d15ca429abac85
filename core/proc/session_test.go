package proc

import (
	"errors"
	"strings"
	"testing"
)

func TestGUISession(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	session := func(name string, err error) func() (string, error) {
		return func() (string, error) { return name, err }
	}
	for _, tc := range []struct {
		goos    string
		env     map[string]string
		session func() (string, error)
		ok      bool
		why     string
	}{
		{"darwin", nil, session("Aqua", nil), true, ""},
		{"darwin", map[string]string{"SSH_CONNECTION": "127.0.0.1 5 127.0.0.1 22"}, session("Background", nil), false, "over SSH"},
		{"darwin", nil, session("System", nil), false, "started by launchd"},
		{"darwin", nil, session("", errors.New("exit status 1")), false, "launchctl managername"},
		{"linux", map[string]string{"DISPLAY": ":0"}, nil, true, ""},
		{"linux", map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, nil, true, ""},
		{"linux", nil, nil, false, "DISPLAY"},
	} {
		ok, why := guiSession(tc.goos, env(tc.env), tc.session)
		if ok != tc.ok || !strings.Contains(why, tc.why) || (ok && why != "") {
			t.Errorf("%s %v: %v %q, want %v containing %q", tc.goos, tc.env, ok, why, tc.ok, tc.why)
		}
	}
}
