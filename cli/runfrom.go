package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/config"
)

// runFrom is `fvm run --from SRC[:TAG] [NEW] [-- CMD]`: a clone of SRC (see
// `fvm clone`), then what `run` does with a VM: a shell, a command, -d, --rm.
func (a *app) runFrom(cmd *cobra.Command, args []string, from, command string, detach, rm, wait bool) error {
	for _, f := range []string{config.KeyCPUs, config.KeyMemory, config.KeyDisk, config.KeyUser, config.KeyAccel, config.KeyBackend, "publish", "mount", "ssh-key", "cold", "rosetta", "no-auto-ports"} {
		if cmd.Flags().Changed(f) {
			return fmt.Errorf("--%s does not go with --from: a clone has its source's settings (drop --%s)", f, f)
		}
	}
	src, tag, err := splitSource(from)
	if err != nil {
		return err
	}
	name, _ := cmd.Flags().GetString("name")
	if len(args) > 1 {
		return fmt.Errorf("unexpected argument %q: with --from the usage is `fvm run --from SRC[:TAG] [NAME] [-- CMD]`", args[1])
	}
	if len(args) == 1 {
		if name != "" && name != args[0] {
			return fmt.Errorf("two names given (%q and --name %q): give one", args[0], name)
		}
		name = args[0]
	}
	ctx := cmd.Context()
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	v, err := a.clone(ctx, c, src, api.CloneRequest{Tag: tag, Name: name})
	if err != nil {
		return err
	}
	name = v.Spec.Name
	cleanup := a.endRun(ctx, c, name, rm)
	if err := a.waitReady(ctx, c, v, t0, wait); err != nil {
		return cleanup(err)
	}
	if detach {
		fmt.Fprintf(a.out, "%s\n", name)
		a.phase("Connect with `fvm ssh %s`; stop with `fvm stop %s`", name, name)
		return nil
	}
	code, err := a.remote(ctx, c, name, command)
	if err := cleanup(err); err != nil {
		return err
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}
