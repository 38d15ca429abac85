package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

func newStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME...",
		Short: "Say how VMs are doing: state, backend, SSH, uptime (`inspect` gives the JSON)",
		Example: `  fvm status web1
  fvm status web1 db1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			for i, name := range args {
				v, err := c.Get(cmd.Context(), name)
				if err != nil {
					return err
				}
				if i > 0 {
					fmt.Fprintln(a.out)
				}
				writeStatus(a.out, v, time.Now())
				fmt.Fprintf(a.out, "  %-8s%s\n", "host", a.hostLine())
			}
			return nil
		},
	}
}

// writeStatus prints a short human summary of v.
func writeStatus(w io.Writer, v api.VM, now time.Time) {
	s := v.Spec
	head := fmt.Sprintf("%s: %s", s.Name, v.State)
	var how []string
	if v.Backend != "" {
		how = append(how, v.Backend)
	}
	if v.Accel != "" && v.State.Active() {
		how = append(how, v.Accel)
	}
	if len(how) > 0 {
		head += " (" + strings.Join(how, ", ") + ")"
	}
	if v.StartedAt != nil && v.State.Active() {
		head += " for " + roughDuration(now.Sub(*v.StartedAt))
	}
	fmt.Fprintln(w, head)
	row := func(k, val string) { fmt.Fprintf(w, "  %-8s%s\n", k, val) }
	row("image", fmt.Sprintf("%s (%s), %d CPUs, %s memory, %s disk", imageOf(s), s.Arch, s.CPUs,
		vm.FormatSize(int64(s.MemoryMiB)<<20), vm.FormatSize(s.DiskBytes)))
	if v.State == vm.Running && v.SSHPort != 0 {
		row("ssh", fmt.Sprintf("`fvm ssh %s` (%s@127.0.0.1:%d)", s.Name, s.User, v.SSHPort))
	} else if !v.State.Active() {
		row("start", fmt.Sprintf("`fvm start %s`", s.Name))
	}
	if len(s.Ports) > 0 {
		var ps []string
		for _, p := range s.Ports {
			ps = append(ps, p.String())
		}
		row("ports", strings.Join(ps, ", "))
	}
	if v.Error != "" {
		row("error", v.Error)
	}
	row("created", ago(v.CreatedAt))
}

// roughDuration renders an uptime to the second below an hour, to the minute above.
func roughDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Hour {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}
