package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
)

func newCloneCmd(a *app) *cobra.Command {
	var wait, noStart bool
	cmd := &cobra.Command{
		Use:   "clone SRC[:TAG] [NEW]",
		Short: "Make a new VM from a VM's snapshot (or one taken now): running in seconds, with its own identity",
		Long: `Clone a VM. Without TAG a snapshot of SRC is taken now (a running SRC pauses
briefly and goes on); with TAG the clone starts from that snapshot (see "fvm
snapshot ls SRC"). A snapshot with memory gives a clone that comes up running
where SRC was (its processes, tmpfs, files) and is made its own machine before
anyone can use it: its own SSH host key (pinned; SRC's is refused), hostname,
machine-id, cloud-init instance id, VM generation ID, entropy and clock. A
snapshot without memory (SRC stopped, or with shared folders) gives a clone that
boots from the disk under its own identity. Clones share SRC's frozen disk
layers; each writes only its own. The clone has SRC's shape and none of its -p
forwards.`,
		Example: `  fvm clone web1 web2
  fvm clone web1:before-upgrade test1
  fvm run --from web1 -- make test`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, tag, err := splitSource(args[0])
			if err != nil {
				return err
			}
			req := api.CloneRequest{Tag: tag, NoStart: noStart}
			if len(args) == 2 {
				req.Name = args[1]
			}
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			t0 := time.Now()
			v, err := a.clone(ctx, c, src, req)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.out, v.Spec.Name)
			if noStart {
				return nil
			}
			return a.waitReady(ctx, c, v, t0, wait)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "also wait until cloud-init finished")
	cmd.Flags().BoolVar(&noStart, "no-start", false, "make the clone without starting it (fvm start starts it from the snapshot later)")
	return cmd
}

// clone asks the host for a clone and says how it came up.
func (a *app) clone(ctx context.Context, c *client.Client, src string, req api.CloneRequest) (api.VM, error) {
	t0 := time.Now()
	from := "a snapshot taken now"
	if req.Tag != "" {
		from = "snapshot " + req.Tag
	}
	a.phase("Cloning %s from %s", src, from)
	v, err := c.Clone(ctx, src, req)
	if err != nil {
		return v, err
	}
	if v.Notice != "" {
		a.phase("Note: %s", v.Notice)
	}
	if req.NoStart {
		a.phase("Created VM %s from %s in %s: `fvm start %s` starts it", v.Spec.Name, src, since(t0), v.Spec.Name)
		return v, nil
	}
	a.phase("%s %s from %s (%s, %s): hypervisor up in %s", bootVerb(v), v.Spec.Name, src, v.Backend, accelText(v.Accel), since(t0))
	return v, nil
}
