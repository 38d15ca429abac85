package libvirt

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"golang.org/x/crypto/ssh"

	"github.com/fvmhq/fvm/core/sshx"
)

func TestLXChannel(t *testing.T) {
	if os.Getenv("LX") == "" {
		t.Skip()
	}
	tg, err := parseURI("qemu:///system")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := connect(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	dom, err := l.DomainLookupByName("fvm-lx")
	if err != nil {
		t.Fatal(err)
	}
	if st, _, _ := l.DomainGetState(dom, 0); st == 1 {
	} else if err := l.DomainCreate(dom); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	defer l.DomainDestroy(dom)
	signer, _, _ := sshx.LoadOrCreateKey("/tmp/e2e-lx/userkey")
	hk, _ := os.ReadFile("/tmp/e2e-lx/hostkey.pub")
	want, _ := sshx.ParsePublicKey(strings.TrimSpace(string(hk)))
	for i := 0; ; i++ {
		if time.Since(t0) > 6*time.Minute {
			t.Fatal("timeout")
		}
		c, err := openStream(ctx, tg, procDomainOpenChannel, dom, SSHChannel, 0)
		if err != nil {
			t.Logf("%s open: %v", time.Since(t0), err)
			time.Sleep(2 * time.Second)
			continue
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		sc, ch, rq, err := ssh.NewClientConn(c, "x", &ssh.ClientConfig{User: "fvm", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.FixedHostKey(want), HostKeyAlgorithms: []string{want.Type()}})
		if err != nil {
			t.Logf("%s ssh: %v", time.Since(t0), err)
			c.Close()
			time.Sleep(time.Second)
			continue
		}
		c.SetDeadline(time.Time{})
		cl := ssh.NewClient(sc, ch, rq)
		t.Logf("%s SSH up", time.Since(t0))
		for j := 0; j < 3; j++ {
			s, _ := cl.NewSession()
			t1 := time.Now()
			out, err := s.CombinedOutput("hostname; uname -r; ls -l /dev/virtio-ports/")
			t.Logf("exec %s: %s %v", time.Since(t1), out, err)
		}
		// throughput
		s, _ := cl.NewSession()
		t1 := time.Now()
		out, err := s.Output("head -c 20000000 /dev/zero")
		t.Logf("20MB in %s (%d, %v)", time.Since(t1), len(out), err)
		cl.Close()
		// reconnect three times
		for k := 0; k < 3; k++ {
			t1 := time.Now()
			var ok bool
			for a := 0; a < 10 && !ok; a++ {
				c, err := openStream(ctx, tg, procDomainOpenChannel, dom, SSHChannel, 0)
				if err != nil {
					t.Logf("reopen: %v", err)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				sc, ch, rq, err := ssh.NewClientConn(c, "x", &ssh.ClientConfig{User: "fvm", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
					HostKeyCallback: ssh.FixedHostKey(want), HostKeyAlgorithms: []string{want.Type()}})
				if err != nil {
					t.Logf("reconnect attempt %d: %v", a, err)
					c.Close()
					continue
				}
				ok = true
				ssh.NewClient(sc, ch, rq).Close()
			}
			t.Logf("reconnect %d: %v in %s", k, ok, time.Since(t1))
		}
		break
	}
	var _ golibvirt.Domain
	_ = l
}
