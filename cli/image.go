package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/image/debianbuild"
	"github.com/fvmhq/fvm/core/vm"
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
	var arch string
	cmd := &cobra.Command{
		Use:   "build debian [--release 12|13] [--arch amd64|arm64] [--packages a,b,...]",
		Short: "Build a cloud-init-ready Debian 12 or 13 image from Debian packages (Linux)",
		Long: `Build a Debian cloud image from Debian packages with mmdebstrap: kernel, systemd,
openssh-server, cloud-init, qemu-guest-agent (and --packages), as a GPT disk with an
EFI system partition that boots under UEFI like upstream cloud images. No loop
devices, no mounts, no internet beyond your apt mirror.

--release picks Debian 13 (trixie, the default) or 12 (bookworm); --arch amd64 or
arm64 (default: this host's). An image of another architecture than the host's is
built under qemu-user emulation through binfmt_misc (packages qemu-user-static and
arch-test; scripts/setup.sh installs and registers them) and takes several times as
long. Its VMs run under TCG emulation too.

The image is registered under a name that says what differs from the default:
  debian-local            Debian 13 for this host's architecture
  debian-local-arm64      Debian 13 arm64 on an amd64 host (debian-local-amd64 on arm64)
  debian-12-local         Debian 12 for this host's architecture
  debian-12-local-arm64   Debian 12 arm64
--name picks another (do, with --packages, to keep the plain image too). A rebuild
with the same inputs (release, arch, packages, apt sources, recipe) is skipped;
other inputs replace the image of that name (VMs made from the old one keep it).

With a remote host (--host, --context) the build runs on that machine, by its
fvm over SSH, and registers the image there.`,
		Example: `  fvm image build debian
  fvm run debian-local
  fvm image build debian --arch arm64 && fvm run debian-local-arm64
  fvm image build debian --release 12 --packages git,build-essential --name dev12`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "debian" {
				return fmt.Errorf("cannot build %q: only `fvm image build debian` is supported", args[0])
			}
			if h := a.remoteHost(); h != nil { // the build runs on that machine (image_build_remote.go)
				return a.remoteBuild(cmd, *h, args)
			}
			if arch != "" {
				a, err := vm.ParseArch(arch)
				if err != nil {
					return fmt.Errorf("--arch %q: use amd64 or arm64", arch)
				}
				opts.Arch = a
			}
			opts.Layout = a.layout
			opts.Log = a.errOut
			t0 := time.Now()
			img, err := debianbuild.Build(cmd.Context(), opts)
			if err != nil {
				return err
			}
			a.phase("Image %s (Debian %s %s) ready in %s (%s)", img.Name, img.Version, img.Arch, since(t0), img.Path)
			fmt.Fprintln(a.out, img.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Release, "release", debianbuild.DefaultRelease, "Debian release: "+strings.Join(debianbuild.Releases(), " or "))
	f.StringVar(&arch, "arch", "", "architecture: amd64 or arm64 (default: this host's)")
	f.StringSliceVar(&opts.Packages, "packages", nil, "extra Debian packages to install, comma-separated (repeatable)")
	f.StringVar(&opts.Name, "name", "", "name to register the image under (default: debian-local, or what --release and --arch make of it)")
	f.StringVar(&opts.Sources, "sources", "", "apt sources file to build from (default: the host's when it names the release, else deb.debian.org)")
	f.BoolVar(&opts.Force, "force", false, "rebuild even when nothing changed")
	f.StringVar(&opts.Recipe, "recipe", debianbuild.RecipeLean, "lean (made for VMs fvm runs: no cloud-init when fvm boots it, less to wait for at boot) or classic (the image as fvm built it before, to compare)")
	return cmd
}
