package cli

import (
	"time"

	"github.com/spf13/cobra"
)

func newSuspendCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "suspend NAME...",
		Short: "Save running VMs' memory to disk and stop them; `fvm start` resumes them in seconds",
		Long: `Suspend running VMs: each one's memory and device state is saved in its
directory and its hypervisor ends. "fvm start NAME" (or "fvm resume NAME")
restores it where it was, processes and open files included, and corrects the
guest's clock; "fvm start --cold NAME" discards the state and boots. "fvm stop
--save" is the same as suspend. The state takes about as much disk as the guest
uses of its memory.`,
		Example: `  fvm suspend web1
  fvm start web1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			for _, name := range args {
				t0 := time.Now()
				if _, err := c.Suspend(cmd.Context(), name); err != nil {
					return err
				}
				a.phase("Suspended %s in %s: `fvm start %s` resumes it", name, since(t0), name)
			}
			return nil
		},
	}
}
