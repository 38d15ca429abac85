package desktop

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/resources"
)

// fakeRunner records commands and answers Run from a script.
type fakeRunner struct {
	started [][]string
	ran     [][]string
	stdin   []string
	out     string
	stderr  string
	code    int
}

func (f *fakeRunner) Start(name string, args ...string) error {
	f.started = append(f.started, append([]string{name}, args...))
	return nil
}

func (f *fakeRunner) Run(stdin, name string, args ...string) (string, string, int, error) {
	f.ran = append(f.ran, append([]string{name}, args...))
	f.stdin = append(f.stdin, stdin)
	return f.out, f.stderr, f.code, nil
}

func fake(goos string, env map[string]string, have ...string) (*Desktop, *fakeRunner) {
	r := &fakeRunner{}
	d := New(nil)
	d.goos, d.run = goos, r
	d.getenv = func(k string) string { return env[k] }
	d.lookPath = func(n string) (string, error) {
		if slices.Contains(have, n) {
			return "/usr/bin/" + n, nil
		}
		return "", errors.New("not found")
	}
	return d, r
}

func TestTerminal(t *testing.T) {
	const cmd = "FVM_HOME=/x fvm ssh web"
	for _, tc := range []struct {
		name string
		env  map[string]string
		have []string
		want []string // argv before "sh -c ..."
	}{
		{"TERMINAL wins", map[string]string{"TERMINAL": "kitty --single-instance"}, []string{"x-terminal-emulator"}, []string{"kitty", "--single-instance", "-e"}},
		{"debian alternative", nil, []string{"x-terminal-emulator", "xterm"}, []string{"x-terminal-emulator", "-e"}},
		{"gnome-terminal", nil, []string{"gnome-terminal"}, []string{"gnome-terminal", "--"}},
		{"xfce", nil, []string{"xfce4-terminal"}, []string{"xfce4-terminal", "-x"}},
		{"xterm", nil, []string{"xterm"}, []string{"xterm", "-e"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, r := fake("linux", tc.env, tc.have...)
			if err := d.OpenTerminal(cmd); err != nil {
				t.Fatal(err)
			}
			got := r.started[0]
			want := append(tc.want, "sh", "-c", cmd+holdOnFailure)
			if !slices.Equal(got, want) {
				t.Errorf("argv = %q, want %q", got, want)
			}
		})
	}
	d, _ := fake("linux", nil)
	if err := d.OpenTerminal(cmd); err == nil || !strings.Contains(err.Error(), "TERMINAL") {
		t.Errorf("no terminal: err = %v", err)
	}

	d, r := fake("darwin", nil)
	if err := d.OpenTerminal(cmd); err != nil {
		t.Fatal(err)
	}
	got := r.started[0]
	if got[0] != "osascript" || got[len(got)-1] != cmd || !strings.Contains(strings.Join(got, "\n"), `tell application "Terminal"`) {
		t.Errorf("macOS argv = %q", got)
	}
}

func TestCopyText(t *testing.T) {
	for _, tc := range []struct {
		goos string
		env  map[string]string
		have []string
		want []string
	}{
		{"darwin", nil, nil, []string{"pbcopy"}},
		{"linux", map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, []string{"wl-copy", "xclip"}, []string{"wl-copy"}},
		{"linux", nil, []string{"wl-copy", "xclip"}, []string{"xclip", "-selection", "clipboard"}},
		{"linux", nil, []string{"xsel"}, []string{"xsel", "--clipboard", "--input"}},
	} {
		d, r := fake(tc.goos, tc.env, tc.have...)
		if err := d.CopyText("fvm ssh web"); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.ran[0], tc.want) || r.stdin[0] != "fvm ssh web" {
			t.Errorf("%v %v: ran %q with %q, want %q", tc.goos, tc.have, r.ran[0], r.stdin[0], tc.want)
		}
	}
	d, _ := fake("linux", nil)
	if err := d.CopyText("x"); err == nil || !strings.Contains(err.Error(), "xclip") {
		t.Errorf("no clipboard program: err = %v", err)
	}
}

func TestOpenText(t *testing.T) {
	d, r := fake("darwin", nil)
	d.OpenText("/a/serial.log")
	if want := []string{"open", "-t", "/a/serial.log"}; !slices.Equal(r.started[0], want) {
		t.Errorf("macOS: %q", r.started[0])
	}
	d, r = fake("linux", nil, "xdg-open")
	d.OpenText("/a/serial.log")
	if want := []string{"xdg-open", "/a/serial.log"}; !slices.Equal(r.started[0], want) {
		t.Errorf("linux: %q", r.started[0])
	}
}

func TestChooseZenity(t *testing.T) {
	buttons := []string{"Cancel", "Leave Running", "Stop VMs"}
	for _, tc := range []struct {
		out  string
		code int
		want int
	}{
		{"", 0, 2},
		{"Leave Running\n", 1, 1},
		{"", 1, 0},
	} {
		d, r := fake("linux", nil, "zenity")
		r.out, r.code = tc.out, tc.code
		got, err := d.Choose("Quit fvm", "2 VMs are running", buttons)
		if err != nil || got != tc.want {
			t.Errorf("zenity exit %d %q: got %d, %v; want %d", tc.code, tc.out, got, err, tc.want)
		}
		args := strings.Join(r.ran[0], " ")
		for _, w := range []string{"--question", "--no-markup", "--ok-label Stop VMs", "--cancel-label Cancel", "--extra-button Leave Running"} {
			if !strings.Contains(args, w) {
				t.Errorf("zenity args %q lack %q", args, w)
			}
		}
	}
	d, r := fake("linux", nil, "zenity")
	r.code, r.stderr = 255, "cannot open display"
	if _, err := d.Choose("t", "m", buttons); err == nil {
		t.Error("zenity failure not reported")
	}
}

func TestDialogsKdialogAndMac(t *testing.T) {
	d, r := fake("linux", nil, "kdialog")
	r.code = 2
	if got, _ := d.Choose("t", "m", []string{"Cancel", "Leave", "Stop"}); got != 0 {
		t.Errorf("kdialog cancel = %d", got)
	}
	r.code, r.out = 0, "1\n"
	if got, ok, err := d.Pick("New VM", "Image:", []string{"a", "b"}); got != "b" || !ok || err != nil {
		t.Errorf("kdialog pick = %q %v %v", got, ok, err)
	}

	d, r = fake("darwin", nil)
	r.code, r.stderr = 1, "execution error: User canceled. (-128)"
	if ok, err := d.Confirm("Delete web?", "sure?", "Delete"); ok || err != nil {
		t.Errorf("mac cancel = %v %v", ok, err)
	}
	r.code, r.stderr, r.out = 0, "", "Delete\n"
	if ok, err := d.Confirm("Delete web?", "sure?", "Delete"); !ok || err != nil {
		t.Errorf("mac confirm = %v %v", ok, err)
	}
	// Text reaches AppleScript as arguments, never as source.
	last := r.ran[len(r.ran)-1]
	if !slices.Equal(last[len(last)-4:], []string{"Delete web?", "sure?", "Cancel", "Delete"}) {
		t.Errorf("osascript args = %q", last)
	}
	r.out = "my vm\n"
	if got, ok, _ := d.Entry("New VM", "Name:", ""); got != "my vm" || !ok {
		t.Errorf("mac entry = %q %v", got, ok)
	}

	d, _ = fake("linux", nil)
	if _, err := d.Confirm("t", "m", "OK"); !errors.Is(err, errNoDialog) {
		t.Errorf("no dialog program: err = %v", err)
	}
	d.Error("t", "m") // logs only, must not panic
}

func TestLogin(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		goos, xdg, path, marker string
	}{
		{"darwin", "", filepath.Join(home, "Library/LaunchAgents", resources.LaunchAgentFile), "<string>/Apps/fvm.app/Contents/MacOS/fvm-app</string>"},
		{"linux", "", filepath.Join(home, ".config/autostart", resources.AutostartFile), "Exec=/Apps/fvm.app/Contents/MacOS/fvm-app"},
		{"linux", filepath.Join(home, "xdg"), filepath.Join(home, "xdg/autostart", resources.AutostartFile), "Exec="},
	} {
		l := LoginFor(tc.goos, home, tc.xdg, "/Apps/fvm.app/Contents/MacOS/fvm-app")
		if l.Path() != tc.path {
			t.Errorf("%s: path %s, want %s", tc.goos, l.Path(), tc.path)
		}
		if l.Enabled() {
			t.Fatalf("%s: enabled before", tc.goos)
		}
		if err := l.SetEnabled(true); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(tc.path)
		if err != nil || !strings.Contains(string(b), tc.marker) || !l.Enabled() {
			t.Errorf("%s: file %q, %v, enabled %v", tc.goos, b, err, l.Enabled())
		}
		if err := l.SetEnabled(false); err != nil || l.Enabled() {
			t.Errorf("%s: disable: %v, enabled %v", tc.goos, err, l.Enabled())
		}
		if err := l.SetEnabled(false); err != nil {
			t.Errorf("%s: disabling twice: %v", tc.goos, err)
		}
	}
	if err := LoginFor("linux", home, "", "relative/fvm-app").SetEnabled(true); err == nil {
		t.Error("relative program path accepted")
	}
}

func TestRunnerExitCodes(t *testing.T) {
	out, _, code, err := execRunner{}.Run("hi", "sh", "-c", "cat; exit 3")
	if out != "hi" || code != 3 || err != nil {
		t.Errorf("Run = %q %d %v", out, code, err)
	}
	if _, _, _, err := (execRunner{}).Run("", "/nonexistent/prog"); err == nil {
		t.Error("missing program: no error")
	}
}

func TestOpenURL(t *testing.T) {
	const u = "http://127.0.0.1:4242/vm/web1/?token=abc#serial"
	for _, tt := range []struct {
		goos string
		env  map[string]string
		have []string
		want []string
	}{
		{"linux", nil, []string{"xdg-open"}, []string{"xdg-open", u}},
		{"darwin", nil, nil, []string{"open", u}},
		{"linux", map[string]string{"BROWSER": "/opt/stub --new-window"}, []string{"xdg-open"}, []string{"/opt/stub", "--new-window", u}},
		{"linux", map[string]string{"BROWSER": "firefox %s:chromium"}, nil, []string{"firefox", u}},
	} {
		d, r := fake(tt.goos, tt.env, tt.have...)
		if err := d.OpenURL(u); err != nil {
			t.Fatalf("%s %v: %v", tt.goos, tt.env, err)
		}
		if len(r.started) != 1 || !slices.Equal(r.started[0], tt.want) {
			t.Errorf("%s %v: ran %q, want %q", tt.goos, tt.env, r.started, tt.want)
		}
	}
	d, _ := fake("linux", nil)
	if err := d.OpenURL(u); err == nil || !strings.Contains(err.Error(), "xdg-open") {
		t.Errorf("without xdg-open: %v", err)
	}
}
