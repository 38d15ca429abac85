package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/image/debianbuild"
)

func newImageCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage images (build, import, rm, prune)",
	}
	cmd.AddCommand(newImageBuildCmd(a), newImageImportCmd(a), newImageWarmCmd(a), newImageRmCmd(a), newImagePruneCmd(a))
	return cmd
}

func newImageBuildCmd(a *app) *cobra.Command {
	var opts debianbuild.Options
	cmd := &cobra.Command{
		Use:   "build debian",
		Short: "Build a cloud-init-ready Debian 12 image from Debian packages (Linux)",
		Long: `Build a Debian 12 (bookworm) amd64 cloud image from Debian packages with
mmdebstrap: kernel, systemd, openssh-server, cloud-init, qemu-guest-agent, as a
GPT disk with an EFI system partition that boots under UEFI like upstream cloud
images. No loop devices, no mounts, no internet beyond your apt mirror.
The result is registered as a local image (default name debian-local); a rebuild
with unchanged inputs is skipped.`,
		Example: `  fvm image build debian
  fvm run debian-local`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "debian" {
				return fmt.Errorf("cannot build %q: only `fvm image build debian` is supported", args[0])
			}
			opts.Layout = a.layout
			opts.Log = a.errOut
			t0 := time.Now()
			img, err := debianbuild.Build(cmd.Context(), opts)
			if err != nil {
				return err
			}
			a.phase("Image %s ready in %s (%s)", img.Name, since(t0), img.Path)
			fmt.Fprintln(a.out, img.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "debian-local", "name to register the image under")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "rebuild even when nothing changed")
	return cmd
}
