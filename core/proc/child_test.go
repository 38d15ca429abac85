package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestChildKillAndWait(t *testing.T) {
	c, err := StartChild(exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	if err := KillAndWait(c.Cmd.Process.Pid, "sleep", true, c.Exited, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if c.Err == nil {
		t.Error("a killed child's Wait returned no error")
	}
	// Not ours: nothing is killed, and a process that stays is reported.
	if err := KillAndWait(1, "init", false, make(chan struct{}), 10*time.Millisecond); err == nil || !strings.Contains(err.Error(), "init (pid 1) is still there") {
		t.Errorf("not ours: %v", err)
	}
}

func TestRemoveFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	os.WriteFile(a, nil, 0o600)
	if err := RemoveFiles(a, filepath.Join(dir, "missing")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a); !os.IsNotExist(err) {
		t.Errorf("%s is still there", a)
	}
}
