package daemon

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
)

type fakeNIC struct {
	n   driver.NIC
	err error
}

func (f fakeNIC) NIC(context.Context) (driver.NIC, error) { return f.n, f.err }

// silentSSH is a port that accepts connections and never speaks: a guest
// behind QEMU's port forward whose network is down.
func silentSSH(t *testing.T) sshx.Target {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return sshx.Target{Addr: ln.Addr().String(), User: "fvm", Timeout: 200 * time.Millisecond}
}

// TestNetStall: once the agent answered, SSH silent for netStallAfter and a
// NIC without IPv4 by the agent's account end the wait for SSH with the
// reason; an IPv4 address (SSH only slow), an agent that cannot say, or an
// agent that never answered end nothing.
func TestNetStall(t *testing.T) {
	defer func(d time.Duration) { netStallAfter = d }(netStallAfter)
	netStallAfter = 100 * time.Millisecond
	d := newTestDaemon(t, &fakeDriver{running: map[string]*fakeMachine{}})
	for _, c := range []struct {
		name    string
		nic     fakeNIC
		agentUp bool
		want    string // "" for no diagnosis
	}{
		{"link-local only", fakeNIC{n: driver.NIC{MAC: "52:54:00:00:00:01", IPs: []string{"fe80::1"}}}, true, "no IPv4 address (only fe80::1)"},
		{"no address", fakeNIC{n: driver.NIC{MAC: "52:54:00:00:00:01"}}, true, "has no IPv4 address,"},
		{"ipv4 there", fakeNIC{n: driver.NIC{IPs: []string{"10.0.2.15", "fe80::1"}}}, true, ""},
		{"agent cannot say", fakeNIC{n: driver.NIC{Error: "the guest agent does not answer"}}, true, ""},
		{"nic error", fakeNIC{err: errors.New("no facts")}, true, ""},
		{"agent never answered", fakeNIC{}, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := sshx.Hold(silentSSH(t), sshx.HolderOptions{})
			defer h.Close()
			w := newNetWatch()
			go d.watchNetwork("v", c.nic, h, w)
			if c.agentUp {
				w.agentUp()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			err := awaitReady(ctx, h, w)
			if c.want == "" {
				if !errors.Is(err, context.DeadlineExceeded) || w.stalled() != nil {
					t.Fatalf("err %v, diagnosis %v: want the wait to run out without one", err, w.stalled())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "network is down") || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "fvm restart v") {
				t.Fatalf("err %v, want the network diagnosis with %q", err, c.want)
			}
			if el := time.Since(start); el > 800*time.Millisecond {
				t.Errorf("the diagnosis came after %v", el)
			}
		})
	}
}
