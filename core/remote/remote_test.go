package remote

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseHost(t *testing.T) {
	for in, want := range map[string]Host{
		"ssh://box":                 {Server: "box"},
		"ssh://me@box":              {User: "me", Server: "box"},
		"ssh://me@10.0.0.1:2222":    {User: "me", Server: "10.0.0.1", Port: 2222},
		"ssh://me@[::1]:22/":        {User: "me", Server: "::1", Port: 22},
		" ssh://box.example.org:22": {Server: "box.example.org", Port: 22},
	} {
		got, err := ParseHost(in)
		if err != nil || got != want {
			t.Errorf("ParseHost(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"box", "tcp://box:2375", "ssh://", "ssh://me:pw@box", "ssh://box:0", "ssh://box:99999",
		"ssh://-oProxyCommand=x", "ssh://-l@box", "ssh://box/path", "ssh://box?x=1", "ssh://a;b@box", "unix:///run/x.sock",
	} {
		if h, err := ParseHost(in); err == nil {
			t.Errorf("ParseHost(%q) = %+v, want an error", in, h)
		} else if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "ssh://[user@]server[:port]") {
			t.Errorf("ParseHost(%q): error %q should be one line with the form to use", in, err)
		}
	}
	h := Host{User: "me", Server: "::1", Port: 2222}
	if h.String() != "ssh://me@[::1]:2222" || h.Name() != "me@[::1]:2222" {
		t.Errorf("String %q Name %q", h.String(), h.Name())
	}
}

func TestContexts(t *testing.T) {
	s := Contexts{Dir: t.TempDir()}
	list, cur, err := s.List()
	if err != nil || len(list) != 1 || list[0].Name != DefaultContext || cur != DefaultContext {
		t.Fatalf("empty store: %v %q %v", list, cur, err)
	}
	if err := s.Create(Context{Name: "lab", Host: "ssh://me@lab:2222", Description: "big"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Context{
		{Name: "lab", Host: "ssh://other"},     // exists
		{Name: "default", Host: "ssh://other"}, // reserved
		{Name: "-x", Host: "ssh://other"},      // name
		{Name: "ok", Host: "http://other"},     // host
	} {
		if err := s.Create(bad); err == nil {
			t.Errorf("Create(%+v) succeeded", bad)
		}
	}
	st, err := os.Stat(filepath.Join(s.Dir, ContextsFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("contexts file: %v %v, want mode 0600", st, err)
	}
	if err := s.Use("nope"); err == nil {
		t.Fatal("use of a missing context succeeded")
	}
	if err := s.Use("lab"); err != nil {
		t.Fatal(err)
	}
	if cur, _ := s.Current(); cur != "lab" {
		t.Fatalf("current %q", cur)
	}
	if err := s.Remove("lab", false); err == nil {
		t.Fatal("removed the current context without -f")
	}
	if err := s.Remove(DefaultContext, true); err == nil {
		t.Fatal("removed the default context")
	}
	if err := s.Remove("lab", true); err != nil {
		t.Fatal(err)
	}
	if cur, _ := s.Current(); cur != DefaultContext {
		t.Fatalf("after removing the current context: current %q", cur)
	}
}

func TestSelectOrder(t *testing.T) {
	s := Contexts{Dir: t.TempDir()}
	s.Create(Context{Name: "lab", Host: "ssh://lab"})
	s.Create(Context{Name: "box", Host: "ssh://box"})
	s.Use("box")
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	pick := func(flagHost, flagCtx string) string {
		t.Helper()
		sel, err := Select(flagHost, flagCtx, getenv, s)
		if err != nil {
			return "error: " + err.Error()
		}
		if sel.Host == nil {
			return "local " + sel.Context
		}
		return sel.Host.Server + " " + sel.Context + " " + sel.From
	}
	if got := pick("", ""); got != "box box `fvm context use`" {
		t.Errorf("current context: %q", got)
	}
	env["FVM_CONTEXT"] = "lab"
	if got := pick("", ""); got != "lab lab FVM_CONTEXT" {
		t.Errorf("FVM_CONTEXT: %q", got)
	}
	env["FVM_HOST"] = "ssh://far"
	if got := pick("", ""); got != "far  FVM_HOST" {
		t.Errorf("FVM_HOST beats FVM_CONTEXT: %q", got)
	}
	if got := pick("", "default"); got != "local default" {
		t.Errorf("--context default: %q", got)
	}
	if got := pick("ssh://flag", ""); got != "flag  --host" {
		t.Errorf("--host: %q", got)
	}
	if got := pick("ssh://flag", "lab"); !strings.HasPrefix(got, "error: --host and --context") {
		t.Errorf("both: %q", got)
	}
	if got := pick("", "nope"); !strings.Contains(got, `context "nope" does not exist`) {
		t.Errorf("missing context: %q", got)
	}
}

func TestClassify(t *testing.T) {
	h := Host{User: "me", Server: "lab", Port: 2222}
	for _, c := range []struct {
		status         int
		stderr, stdout string
		want           string
	}{
		{255, "No ED25519 host key is known for [lab]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\n", "", "host key of me@lab:2222 is not known"},
		{255, "@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n...\nHost key verification failed.\n", "", "has CHANGED"},
		{255, "me@lab: Permission denied (publickey).\n", "", "refused the login as me"},
		{255, "ssh: connect to host lab port 2222: Connection refused\n", "", "cannot reach me@lab:2222 over SSH: connect to host lab port 2222: Connection refused"},
		{127, "bash: line 1: fvm: command not found\n", "", "fvm is not installed on me@lab:2222"},
		{127, "sh: 1: fvm: not found\n", "", "fvm is not installed on me@lab:2222"},
		{1, "fvm: unknown command \"system\" for \"fvm\"\n", "", "too old"},
		{1, "fvm: the fvm host did not come up on /x.sock (boom)\n", "", "could not be reached there: the fvm host did not come up"},
		{0, "", "Welcome to lab!\n", "instead of fvm's greeting"},
	} {
		err := classify(h, c.status, c.stderr, c.stdout)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("classify(%d, %q): %q, want one line with %q", c.status, c.stderr, err, c.want)
		}
	}
	older := revisionError(h, 3, "v1", 4, "v2").Error()
	newer := revisionError(h, 5, "v3", 4, "v2").Error()
	if !strings.HasSuffix(older, "upgrade fvm on me@lab:2222") || !strings.HasSuffix(newer, "upgrade fvm on this machine") {
		t.Errorf("revision errors: %q / %q", older, newer)
	}
}

func TestShellQuote(t *testing.T) {
	got := ShellQuote([]string{"fvm", "image", "build", "--packages=a,b", "it's", "", "$(x)"})
	want := `fvm image build --packages=a,b 'it'\''s' '' '$(x)'`
	if got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

// fakeSSH writes a stand-in for the ssh program that runs script instead of
// connecting (its arguments are ssh's; the last is the remote command).
func fakeSSH(t *testing.T, script string) *SSH {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ssh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return &SSH{Host: Host{User: "me", Server: "lab"}, Program: p, Revision: 4, Version: "v-test", Greet: 5 * time.Second}
}

func TestDialSpeaksAfterTheGreeting(t *testing.T) {
	s := fakeSSH(t, `printf 'fvm-dial-stdio/1 4 v-remote\n'; exec cat`)
	c, err := s.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cc := c.(*cmdConn); cc.RemoteVersion != "v-remote" || cc.RemoteRevision != 4 {
		t.Errorf("greeting read as %q %d", cc.RemoteVersion, cc.RemoteRevision)
	}
	io.WriteString(c, "ping\n")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	c.Close()
}

func TestDialFailures(t *testing.T) {
	for script, want := range map[string]string{
		`echo 'me@lab: Permission denied (publickey).' >&2; exit 255`:    "refused the login as me",
		`echo 'sh: 1: fvm: not found' >&2; exit 127`:                     "fvm is not installed on me@lab",
		`printf 'fvm-dial-stdio/1 3 v-old\n'; exec cat`:                  "v-old on me@lab speaks API revision 3; fvm v-test here speaks revision 4: upgrade fvm on me@lab",
		`printf 'fvm-dial-stdio/1 9 v-new\n'; exec cat`:                  "upgrade fvm on this machine",
		`echo 'fvm: cannot start the host: disk full' >&2; exit 1`:       "could not be reached there: cannot start the host: disk full",
		`echo 'Host key verification failed.' >&2; exit 255`:             "is not known",
		`printf 'motd line\n'; sleep 1`:                                  "instead of fvm's greeting",
		`echo 'ssh: Could not resolve hostname lab: nope' >&2; exit 255`: "cannot reach me@lab over SSH",
	} {
		_, err := fakeSSH(t, script).Dial(context.Background())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", script, err, want)
		}
	}
	s := fakeSSH(t, `sleep 30`)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if _, err := s.Dial(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 3*time.Second {
		t.Errorf("a dial past its context: %v after %s", err, time.Since(t0))
	}
}

// A session whose ssh dies mid-stream reads as a lost connection, not a
// clean end.
func TestLostConnection(t *testing.T) {
	s := fakeSSH(t, `printf 'fvm-dial-stdio/1 4 v\n'; read x; echo 'Connection to lab closed by remote host.' >&2; kill -9 $$`)
	c, err := s.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "go\n")
	_, err = io.ReadAll(c)
	var lost *LostError
	if !errors.As(err, &lost) || !strings.Contains(err.Error(), "the SSH connection to me@lab was lost (ssh: signal: killed") {
		t.Fatalf("read after ssh died: %v", err)
	}
}

func TestServeStdio(t *testing.T) {
	host, conn := net.Pipe()
	go func() { // the host: answers one line, then closes
		buf := make([]byte, 6)
		io.ReadFull(host, buf)
		host.Write([]byte("pong:" + string(buf)))
		host.Close()
	}()
	inR, inW := io.Pipe()
	var out strings.Builder
	go inW.Write([]byte("hello\n"))
	if err := ServeStdio(conn, inR, &out, Greeting(4, "v", "")); err != nil {
		t.Fatal(err)
	}
	if out.String() != "fvm-dial-stdio/1 4 v\npong:hello\n" {
		t.Fatalf("stdout %q", out.String())
	}
}

func TestLocalURL(t *testing.T) {
	got, err := LocalURL("http://127.0.0.1:4711/vm/web1/?token=abc#serial", 5000)
	if err != nil || got != "http://127.0.0.1:5000/vm/web1/?token=abc#serial" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := LocalURL("http://10.0.0.1:4711/vm/web1/", 5000); err == nil {
		t.Fatal("a non-loopback console address was taken")
	}
}

func TestControlDir(t *testing.T) {
	short := filepath.Join(t.TempDir(), "run")
	if d, err := ControlDir(short); err != nil || d != short {
		t.Fatalf("short dir: %q %v", d, err)
	}
	long := filepath.Join(t.TempDir(), strings.Repeat("x", 80))
	d, err := ControlDir(long)
	if err != nil || d == long || len(d)+len("/fvm-")+40+17 > 104 {
		t.Fatalf("long dir: %q %v", d, err)
	}
	if st, _ := os.Stat(d); st.Mode().Perm() != 0o700 {
		t.Fatalf("%s mode %v", d, st.Mode())
	}
}

// A session the shared connection's server refuses (MaxSessions) gets a
// connection of its own.
func TestDialFallsBackToOwnConnection(t *testing.T) {
	s := fakeSSH(t, `case "$*" in
*ControlMaster=auto*) echo 'mux_client_request_session: session request failed: Session open refused by peer' >&2; exit 255 ;;
esac
printf 'fvm-dial-stdio/1 4 v\n'; exec cat`)
	s.ControlDir = t.TempDir()
	c, err := s.Dial(context.Background())
	if err != nil {
		t.Fatalf("no fallback: %v", err)
	}
	c.Close()
}

// A login script's banner before the greeting is skipped.
func TestDialSkipsABanner(t *testing.T) {
	c, err := fakeSSH(t, `printf 'Welcome!\nLast login: never\n'; printf 'fvm-dial-stdio/1 4 v\n'; exec cat`).Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "x\n")
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "x\n" {
		t.Fatalf("after the banner: %q %v", b, err)
	}
	c.Close()
}
