package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/vm"
)

func newCpCmd(a *app) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "cp SRC NAME:DST | NAME:SRC DST",
		Short: "Copy files and directories between this machine and a VM",
		Long: `Copy files and directories between this machine and a running VM, like
"docker cp": recursive, modes, modification times and symbolic links kept.

A file goes to DST, or into DST when it is a directory (or ends in /). A
directory goes into DST as DST/NAME when DST exists and becomes DST when it does
not; SRC/. copies what is inside SRC. Paths in the VM are its user's: relative
ones start in the user's home. The copy runs over SFTP on the connection the
host holds to the VM; a bar shows the progress of large copies.`,
		Example: `  fvm cp ./site web1:/tmp/
  fvm cp web1:/var/log/syslog .
  fvm cp ./build/. web1:app`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, dst, err := parseCpArgs(args[0], args[1])
			if err != nil {
				return err
			}
			name := src.vm + dst.vm
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			sc, err := c.Exec(ctx, name, api.ExecRequest{Subsystem: "sftp"})
			if err != nil {
				return err
			}
			defer sc.Close()
			r, w := sc.Pipe()
			sf, err := sftp.NewClientPipe(r, w)
			if err != nil {
				return fmt.Errorf("vm %q: sftp: %w", name, err)
			}
			defer sf.Close()
			bar := a.copyBar(quiet)
			t0 := time.Now()
			var st sshx.CopyStats
			if src.vm == "" {
				st, err = sshx.Upload(ctx, sf, src.path, dst.path, bar.update)
			} else {
				st, err = sshx.Download(ctx, sf, src.path, dst.path, bar.update)
			}
			bar.finish()
			if err != nil {
				return fmt.Errorf("cp: %w", err)
			}
			if !quiet {
				a.phase("Copied %s in %s (%d files, %d directories, %d links)", vm.FormatSize(st.Bytes), since(t0), st.Files, st.Dirs, st.Links)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar or summary")
	return cmd
}

// cpPath is one side of a copy: a path here (vm "") or in a VM.
type cpPath struct{ vm, path string }

// parseCpArg reads NAME:PATH as a VM's path; anything starting with / . or ~,
// or whose part before the colon is no VM name, is a local path.
func parseCpArg(s string) (cpPath, error) {
	if s == "" {
		return cpPath{}, errors.New("cp: an empty path")
	}
	if i := strings.Index(s, ":"); i > 0 && !strings.ContainsAny(s[:1], "/.~") {
		name, p := s[:i], s[i+1:]
		if vm.ValidateName(name) == nil {
			if p == "" {
				p = "." // the user's home
			}
			return cpPath{vm: name, path: p}, nil
		}
	}
	return cpPath{path: s}, nil
}

func parseCpArgs(a, b string) (cpPath, cpPath, error) {
	src, err := parseCpArg(a)
	if err != nil {
		return src, cpPath{}, err
	}
	dst, err := parseCpArg(b)
	if err != nil {
		return src, dst, err
	}
	switch {
	case src.vm != "" && dst.vm != "":
		return src, dst, fmt.Errorf("cp: both %q and %q are in VMs: copy through this machine, one side at a time", a, b)
	case src.vm == "" && dst.vm == "":
		return src, dst, fmt.Errorf("cp: neither %q nor %q is in a VM: name one as NAME:PATH (e.g. web1:/tmp/)", a, b)
	}
	return src, dst, nil
}

// copyBar is a byte progress bar on a terminal for copies over 8 MiB.
type copyBar struct {
	on  bool
	bar *progressbar.ProgressBar
}

func (a *app) copyBar(quiet bool) *copyBar {
	f, ok := a.errOut.(*os.File)
	return &copyBar{on: !quiet && ok && term.IsTerminal(int(f.Fd()))}
}

func (b *copyBar) update(done, total int64) {
	if !b.on || total < 8<<20 {
		return
	}
	if b.bar == nil {
		b.bar = progressbar.DefaultBytes(total, "copying")
	}
	b.bar.Set64(done)
}

func (b *copyBar) finish() {
	if b.bar != nil {
		b.bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
}
