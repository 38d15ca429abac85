package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/fvmhq/fvm/scripts/internal/sshdtest"
)

// benchRemote: `fvm exec NAME -- true` and `fvm ps` through a loopback SSH
// context (a real sshd on 127.0.0.1 logging in as this user, whose fvm host
// is this run's: the same VM) against the same commands on the local socket,
// 20 of each, interleaved. The client is another account (fvmclient: OpenSSH
// reads the account's ~/.ssh), with a shared connection as fvm sets it up.
func benchRemote(b *bench) error {
	if err := sshdtest.Available(); err != nil {
		return err
	}
	const name = "bench-remote"
	if err := b.vm(name, "--memory", "1G"); err != nil {
		return err
	}
	if _, err := b.run("wait", name); err != nil {
		return err
	}
	cl, err := sshdtest.EnsureUser("fvmclient")
	if err != nil {
		return err
	}
	sshDir := filepath.Join(cl.HomeDir, ".ssh")
	if _, err := os.Stat(sshDir); err == nil {
		return fmt.Errorf("%s exists: the bench writes its own key there and removes it; move it away", sshDir)
	}
	dir, err := os.MkdirTemp("", "fvm-bc")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "bin", "fvm")
	if err := copyExe(b.fvm, bin); err != nil {
		return err
	}
	pub, err := sshdtest.ClientHome(cl.HomeDir)
	if err != nil {
		return err
	}
	defer os.RemoveAll(sshDir)
	srv, err := sshdtest.Start(sshdtest.Options{
		Dir: filepath.Join(dir, "sshd"), Users: []string{"root"}, AuthorizedKey: pub,
		Env:      []string{"PATH=" + filepath.Dir(bin) + ":/usr/bin:/bin", "FVM_HOME=" + b.home},
		BarePATH: "/usr/bin:/bin",
	})
	if err != nil {
		return err
	}
	defer srv.Stop()
	if err := srv.TrustIn(cl.HomeDir); err != nil {
		return err
	}
	clientHome := filepath.Join(dir, "ch")
	os.MkdirAll(clientHome, 0o700)
	sshdtest.Chown(cl, clientHome)
	sshdtest.Chown(cl, sshDir)
	host := "ssh://root@127.0.0.1:" + strconv.Itoa(srv.Port)
	remote := func(args ...string) (time.Duration, error) {
		return asUser(cl, clientHome, bin, append([]string{"--host", host}, args...)...)
	}
	defer asUser(cl, clientHome, "ssh", "-O", "exit", "-o", "ControlPath="+filepath.Join(clientHome, "run", "fvm-%C"), "-p", strconv.Itoa(srv.Port), "root@127.0.0.1")
	if _, err := remote("ps"); err != nil { // the shared connection is made once
		return err
	}
	var lExec, rExec, lPs, rPs []time.Duration
	for i := 0; i < 20; i++ {
		for _, m := range []struct {
			d    *[]time.Duration
			args []string
			far  bool
		}{
			{&lExec, []string{"exec", name, "--", "true"}, false},
			{&rExec, []string{"exec", name, "--", "true"}, true},
			{&lPs, []string{"ps"}, false},
			{&rPs, []string{"ps"}, true},
		} {
			var d time.Duration
			if m.far {
				d, err = remote(m.args...)
			} else {
				d, err = b.timed(m.args...)
			}
			if err != nil {
				return err
			}
			*m.d = append(*m.d, d)
		}
	}
	added := func(far, near []time.Duration) string {
		return fmt.Sprintf("%+.3f s per command", secs(median(far))-secs(median(near)))
	}
	b.add(Row{Name: "fvm exec NAME -- true through a loopback SSH context (median of 20)", Value: secs(median(rExec)), Unit: "s",
		Versus: "on this machine's socket, same VM", Against: secs(median(lExec)), Target: "≤ 0.15 s added", Note: added(rExec, lExec)})
	b.add(Row{Name: "fvm ps through a loopback SSH context (median of 20)", Value: secs(median(rPs)), Unit: "s",
		Versus: "on this machine's socket", Against: secs(median(lPs)), Note: added(rPs, lPs)})
	return nil
}

// asUser runs a program as an account, with its home, and times it.
func asUser(u *user.User, fvmHome, prog string, args ...string) (time.Duration, error) {
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command(prog, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Env = []string{"HOME=" + u.HomeDir, "FVM_HOME=" + fvmHome, "PATH=/usr/bin:/bin"}
	cmd.Dir = u.HomeDir
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return d, fmt.Errorf("%s %v as %s: %v: %s", prog, args, u.Username, err, out)
	}
	return d, err
}

// copyExe copies the binary somewhere every account can run it.
func copyExe(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
