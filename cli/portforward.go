package cli

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/remote"
	"github.com/fvmhq/fvm/core/vm"
)

func newPortForwardCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "port-forward NAME [LOCAL:]GUEST...",
		Short: "Forward ports of this machine's 127.0.0.1 to a VM's ports, until Ctrl-C",
		Long: `Listen on this machine's 127.0.0.1 and carry each connection to a port of
the VM, like "kubectl port-forward": through the fvm host's API and the SSH
connection the host holds to the VM, so it works the same for a VM on this
machine and for one on a remote host (--host, --context), and nothing listens on
any other address on either machine. The guest side is the guest's loopback:
a server listening only on the guest's 127.0.0.1 is reached too.

GUEST alone listens on the same port here; LOCAL:GUEST on LOCAL; :GUEST (or
0:GUEST) on a free port, which is printed. It runs until interrupted.`,
		Example: `  fvm port-forward web1 8080          # 127.0.0.1:8080 here → web1:8080
  fvm port-forward web1 9000:80 :5432 # 127.0.0.1:9000 → web1:80, a free port → web1:5432`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			var fwds []portPair
			for _, s := range args[1:] {
				p, err := parsePortPair(s)
				if err != nil {
					return err
				}
				fwds = append(fwds, p)
			}
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			v, err := c.Get(ctx, name)
			if err != nil {
				return err
			}
			if v.State != vm.Running {
				return fmt.Errorf("vm %s is %s: start it first (`fvm start %s`)", name, v.State, name)
			}
			var lns []net.Listener
			defer func() {
				for _, ln := range lns {
					ln.Close()
				}
			}()
			for _, p := range fwds {
				ln, err := remote.ListenLoopback(int(p.local))
				if err != nil {
					return fmt.Errorf("port-forward %s: %w: pick another local port (LOCAL:%d) or :%d for a free one", p, err, p.guest, p.guest)
				}
				lns = append(lns, ln)
			}
			var wg sync.WaitGroup
			errs := make(chan error, len(fwds))
			for i, p := range fwds {
				ln := lns[i]
				fmt.Fprintf(a.out, "Forwarding from %s -> %s:%d\n", ln.Addr(), name, p.guest)
				wg.Add(1)
				go func() {
					defer wg.Done()
					guest := p.guest
					errs <- remote.Serve(ctx, ln, func(ctx context.Context) (net.Conn, error) {
						return c.DialGuest(ctx, name, guest)
					}, func(err error) {
						fmt.Fprintf(a.errOut, "==> %s -> %s:%d: %s\n", ln.Addr(), name, guest, clean(err.Error()))
					})
				}()
			}
			a.phase("Forwarding to %s on %s; Ctrl-C stops", name, a.hostName())
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					return fmt.Errorf("port-forward: %w", err)
				}
			}
			return nil
		},
	}
}

// portPair is one [LOCAL:]GUEST of port-forward; local 0 is a free port.
type portPair struct{ local, guest uint16 }

func (p portPair) String() string { return fmt.Sprintf("%d:%d", p.local, p.guest) }

func parsePortPair(s string) (portPair, error) {
	port := func(v string) (uint16, error) {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("port-forward %q: %q is no port number: give [LOCAL:]GUEST, e.g. 8080 or 9000:80", s, v)
		}
		return uint16(n), nil
	}
	local, guest, two := strings.Cut(s, ":")
	if !two {
		g, err := port(local)
		if err == nil && g == 0 {
			err = fmt.Errorf("port-forward %q: guest port 0: give the port the guest listens on", s)
		}
		return portPair{g, g}, err
	}
	var p portPair
	var err error
	if local != "" {
		if p.local, err = port(local); err != nil {
			return p, err
		}
	}
	if p.guest, err = port(guest); err != nil {
		return p, err
	}
	if p.guest == 0 {
		return p, fmt.Errorf("port-forward %q: guest port 0: give the port the guest listens on", s)
	}
	return p, nil
}

// hostName names the host in progress lines: "this machine" or the server.
func (a *app) hostName() string {
	if h := a.remoteHost(); h != nil {
		return h.Name()
	}
	return "this machine"
}
