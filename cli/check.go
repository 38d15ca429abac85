package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/image/debianbuild"
	"github.com/fvmhq/fvm/core/remote"
	"github.com/fvmhq/fvm/core/vm"
)

func newCheckCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Check what this host can run and say what is missing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l := a.layout
			h := a.remoteHost()
			if h == nil {
				fmt.Fprintf(a.out, "config   %s\ndata     %s\ncache    %s\nsocket   %s\nhost log %s\n\n",
					l.ConfigFile(), l.DataDir, l.CacheDir, l.SocketPath(), l.DaemonLog())
				if home, _ := os.UserHomeDir(); runtime.GOOS == "darwin" && l.InLibraryCaches(home) {
					fmt.Fprintf(a.out, "note: base disks are in %s, which cache cleaners empty (then VMs made from them no longer boot); installs since keep them in Application Support: to move, remove the VMs and images and delete that directory\n\n", l.CacheDir)
				}
			} else {
				fmt.Fprintf(a.out, "contexts %s\nssh      %s (your OpenSSH; shared connection in %s)\n\n",
					filepath.Join(l.ConfigDir, remote.ContextsFile), h, l.RunDir)
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			info, err := c.Host(cmd.Context())
			if err != nil {
				return err
			}
			a.hostInfo = &info
			fmt.Fprintf(a.out, "host     %s\n", a.hostLine())
			for i, b := range info.Backends {
				label := "backend"
				if i > 0 {
					label = ""
				}
				if b.Available {
					fmt.Fprintf(a.out, "%-8s %s: %s\n", label, b.Name, strings.Join(b.Features, ", "))
				} else {
					fmt.Fprintf(a.out, "%-8s %s: not available: %s\n", label, b.Name, b.Reason)
				}
			}
			fmt.Fprintln(a.out)
			failed := 0
			for _, ch := range info.Checks {
				mark := "ok  "
				if !ch.OK {
					mark = "FAIL"
					failed++
				}
				fmt.Fprintf(a.out, "[%s] %-12s %s\n", mark, ch.Name, ch.Detail)
				if ch.Fix != "" {
					fmt.Fprintf(a.out, "       fix: %s\n", ch.Fix)
				}
			}
			// Image builds run in this process, not in the host: checked here,
			// or, for a remote host, by `fvm image build` there.
			for _, arch := range []vm.Arch{vm.AMD64, vm.ARM64} {
				if h != nil {
					fmt.Fprintf(a.out, "[--  ] %-12s runs on %s (`fvm image build` over SSH): `ssh %s fvm check` checks it there\n", "image build "+string(arch), h.Name(), h.SSHArgs())
					continue
				}
				name := "image build " + string(arch)
				if err := debianbuild.CheckHost(arch); err != nil {
					// Optional: VMs run without it; `fvm image build` says the same.
					fmt.Fprintf(a.out, "[--  ] %-12s not ready: %v\n", name, err)
					continue
				}
				how := "natively"
				if arch != vm.HostArch() {
					how = "under qemu-user emulation (binfmt_misc)"
				}
				fmt.Fprintf(a.out, "[ok  ] %-12s fvm image build debian --arch %s builds %s\n", name, arch, how)
			}
			if failed > 0 {
				return fmt.Errorf("%d check(s) failed: see the fixes above", failed)
			}
			return nil
		},
	}
}
