package cli

import "testing"

func TestExecArgs(t *testing.T) {
	for _, c := range []struct {
		args          []string
		name, command string
		err           bool
	}{
		{[]string{"web1", "uname", "-a"}, "web1", "uname -a", false},
		{[]string{"web1", "--", "ls", "-la", "/"}, "web1", "ls -la /", false},
		{[]string{"web1", "--", "--"}, "web1", "--", false}, // only the first "--" is fvm's
		{[]string{"web1", "echo", "a b"}, "web1", "echo 'a b'", false},
		{[]string{"web1", "--"}, "", "", true},
	} {
		name, command, err := execArgs(c.args)
		if name != c.name || command != c.command || (err != nil) != c.err {
			t.Errorf("execArgs(%q) = %q, %q, %v", c.args, name, command, err)
		}
	}
}
