package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/vm"
)

func newImageWarmCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "warm IMAGE [ARCH]",
		Short: "Make an image's warm snapshot, so new VMs of it start in seconds",
		Long: `Make the warm snapshot of IMAGE for VMs of a shape (CPUs, memory, user: the
same flags, FVM_* variables and config as "fvm run"): fvm boots a template VM of
the image once under a generic identity, waits for cloud-init, and saves its
memory and disk. Every later "fvm run"/"create" of that image and shape then
starts a clone of it in seconds, re-identified before use (its own host key,
hostname, machine id, keys, entropy, clock and disk size).

The host does this by itself in the background after the first cold boot of an
image and shape (turn it off with images.warm: false in the config file or
FVM_IMAGES_WARM=false); this command does it now and waits. "fvm images" shows
the snapshots; they go with their image ("fvm image rm", "fvm image prune").

With --spare the host also keeps one clone of the snapshot ready ahead of time,
re-identified and logged into, then frozen: the next "fvm run" of this image
and shape (without -p, --ssh-key or shares) is handed it, named and with its
clock set, in about a second; the host makes the next one 20 s later. It costs
the memory of one more VM while it waits (no CPU); it ends with the host and
comes back when the host starts. --spare=false stops it.`,
		Example: `  fvm image warm debian-local
  fvm image warm debian-local --cpus 4 --memory 4G
  fvm run debian-local      # starts from the snapshot
  fvm image warm debian-local --spare   # and keep a clone ready`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := vm.Spec{Image: args[0]}
			if len(args) == 2 {
				arch, err := vm.ParseArch(args[1])
				if err != nil {
					return err
				}
				spec.Arch = arch
			}
			s, err := config.VMSettings(a.cfg, cmd.Flags())
			if err != nil {
				return err
			}
			s.Apply(&spec)
			if err := spec.ValidateSettings(); err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			if err := precheck(cmd.Context(), c, spec); err != nil {
				return err
			}
			if err := a.ensureImage(cmd.Context(), c, &spec, urlFlags{}); err != nil {
				return err
			}
			t0 := time.Now()
			a.phase("Making the warm snapshot of %s for %d CPUs, %s memory, user %s (a VM boot)", spec.Image, spec.CPUs, vm.FormatSize(int64(spec.MemoryMiB)<<20), spec.User)
			req := api.WarmRequest{Spec: spec}
			if cmd.Flags().Changed("spare") {
				on, _ := cmd.Flags().GetBool("spare")
				req.Spare = &on
			}
			snap, err := c.WarmImage(cmd.Context(), req)
			if err != nil {
				return err
			}
			a.phase("Warm snapshot ready in %s: %s on disk", since(t0), vm.FormatSize(snap.Bytes))
			if snap.Spare {
				a.phase("A spare clone of it is ready: the next run of this image and shape is handed it")
			}
			fmt.Fprintln(a.out, snap.Dir)
			return nil
		},
	}
	d := vm.Defaults
	fl := cmd.Flags()
	fl.String(config.KeyCPUs, fmt.Sprint(d.CPUs), "virtual CPUs of the VMs it serves")
	fl.String(config.KeyMemory, vm.FormatSize(int64(d.MemoryMiB)<<20), "memory of the VMs it serves")
	fl.String(config.KeyUser, d.User, "login user of the VMs it serves")
	fl.String(config.KeyDisk, vm.FormatSize(d.DiskBytes), "disk of the template: clones of this size start without growing theirs, larger ones grow it, smaller ones boot cold")
	fl.String(config.KeyAccel, d.Accel, "acceleration: auto, kvm, hvf or tcg")
	fl.String(config.KeyBackend, d.Backend, backendUsage+"; those that make warm snapshots")
	fl.Bool("spare", false, "keep a spare clone ready, frozen (the memory of one more VM): the next run gets a shell in about a second; --spare=false stops")
	a.withBackends(cmd)
	return cmd
}
