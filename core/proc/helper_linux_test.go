package proc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The "host" of TestHelperDiesWithHost: starts a helper that dies with it,
// prints the helper's pid and waits to be killed.
func init() {
	if os.Getenv("FVM_PROC_TEST_HOST") != "1" {
		return
	}
	cmd := DiesWithHost(exec.Command("sleep", "60"))
	if err := cmd.Start(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(cmd.Process.Pid)
	time.Sleep(time.Minute)
	os.Exit(0)
}

func TestHelperDiesWithHost(t *testing.T) {
	host := exec.Command(os.Args[0], "-test.run=^$")
	host.Env = append(os.Environ(), "FVM_PROC_TEST_HOST=1")
	out, _ := host.StdoutPipe()
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		host.Process.Kill()
		t.Fatalf("the host said %q: %v", line, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		host.Process.Kill()
		t.Fatalf("the host said %q", line)
	}
	if syscall.Kill(pid, 0) != nil {
		t.Fatalf("the helper %d is not running while its host runs", pid)
	}
	host.Process.Signal(syscall.SIGKILL)
	host.Wait()
	// The helper is the host's child: once killed, init (or a subreaper) reaps it.
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, _, err := Info(pid); err != nil {
			return
		}
		if time.Now().After(end) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the helper %d outlived its host by 5 s", pid)
		}
	}
}
