package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/vm"
)

func newPullCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "pull IMAGE [ARCH]",
		Short: "Download the current build of a catalog image, verified",
		Long: `Download the current official cloud image of IMAGE (see "fvm images --available"):
debian, debian:12, debian:bookworm, ubuntu:24.04, ubuntu:noble, fedora, arch,
alpine... A bare name is the newest stable release; ARCH defaults to the host's.

The file is checked against upstream's checksum index, an interrupted download
resumes where it stopped, and concurrent pulls of one image download it once.
A cached image is replaced only when upstream has a newer build; VMs keep the
base they were created from. Mirrors: images.<distro>.mirror in the config file
or FVM_IMAGES_<DISTRO>_MIRROR.`,
		Example: `  fvm pull debian
  fvm pull ubuntu:24.04 arm64
  FVM_IMAGES_DEBIAN_MIRROR=http://mirror.local/cloud fvm pull debian:12`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.PullRequest{Ref: args[0]}
			if len(args) == 2 {
				arch, err := vm.ParseArch(args[1])
				if err != nil {
					return err
				}
				req.Arch = arch
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			t0 := time.Now()
			img, err := a.pull(cmd.Context(), c, req)
			if err != nil {
				return err
			}
			a.phase("%s (%s) %s: %s, %s, in %s", img.Ref, img.Arch, buildText(img), vm.FormatSize(img.Size), shortDigest(img.Digest), since(t0))
			fmt.Fprintln(a.out, img.Ref)
			return nil
		},
	}
}

// pull runs a pull with progress on stderr, passing this shell's mirror settings.
func (a *app) pull(ctx context.Context, c *client.Client, req api.PullRequest) (api.Image, error) {
	req.Mirrors, req.Indexes = a.mirrors(), a.indexes()
	p := a.newProgress(req.Ref)
	img, err := c.PullImage(ctx, req, p.event)
	p.finish()
	return img, err
}

// mirrors are the image mirrors this invocation sees (config file and
// FVM_IMAGES_<DISTRO>_MIRROR). They travel with the request because the host
// may have been started from another shell with another environment.
func (a *app) mirrors() map[string]string {
	if a.cfg == nil {
		return nil
	}
	cat, err := config.ImageCatalog(a.cfg)
	if err != nil {
		return nil // the host reports the config problem itself
	}
	return config.Mirrors(a.cfg, cat.Names())
}

// indexes are the checksum index hosts this invocation sees
// (images.<distro>.index, FVM_IMAGES_<DISTRO>_INDEX), sent like mirrors.
func (a *app) indexes() map[string]string {
	if a.cfg == nil {
		return nil
	}
	cat, err := config.ImageCatalog(a.cfg)
	if err != nil {
		return nil
	}
	return config.Indexes(a.cfg, cat.Names())
}

// urlFlags let `run` and `create` take an image by URL.
type urlFlags struct {
	checksum string
	insecure bool
}

func (u *urlFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&u.checksum, "checksum", "", "for an image URL: its sha256:HEX or sha512:HEX checksum")
	cmd.Flags().BoolVar(&u.insecure, "insecure-skip-verify", false, "for an image URL without --checksum: use it unverified (dangerous)")
}

// ensureImage makes spec.Image ready before Create: a URL is imported
// (verified), a catalog reference that is not cached is pulled with progress.
// Local names, cached images and files cost one quick request.
func (a *app) ensureImage(ctx context.Context, c *client.Client, spec *vm.Spec, u urlFlags) error {
	switch {
	case isURL(spec.Image):
		img, err := a.importImage(ctx, c, api.ImportRequest{
			Source: spec.Image, Checksum: u.checksum, InsecureSkipVerify: u.insecure, Arch: spec.Arch,
		})
		if err != nil {
			return err
		}
		spec.Image = img.Name
		return nil
	case u.checksum != "" || u.insecure:
		return fmt.Errorf("--checksum and --insecure-skip-verify are for image URLs; %q is not one", spec.Image)
	case strings.HasPrefix(spec.Image, "/") && c.Remote():
		// This machine's file, which the host cannot see: uploaded and
		// registered under a name made from the file's (upload.go).
		img, err := a.importFile(ctx, c, spec.Image, api.ImportRequest{Arch: spec.Arch})
		if err != nil {
			return err
		}
		spec.Image = img.Name
		return nil
	case strings.HasPrefix(spec.Image, "/"):
		return nil // a disk file: the host caches it
	}
	_, err := a.pull(ctx, c, api.PullRequest{Ref: spec.Image, Arch: spec.Arch, IfMissing: true})
	return err
}

// importImage runs an import with progress, warning loudly when nothing verifies it.
func (a *app) importImage(ctx context.Context, c *client.Client, req api.ImportRequest) (api.Image, error) {
	if req.Checksum != "" && req.InsecureSkipVerify {
		return api.Image{}, fmt.Errorf("give --checksum or --insecure-skip-verify, not both: with a checksum the image is verified")
	}
	if isURL(req.Source) && req.Checksum == "" && req.InsecureSkipVerify {
		fmt.Fprintf(a.errOut, "WARNING: --insecure-skip-verify: %s will NOT be verified.\n"+
			"WARNING: whoever controls that server, a mirror or (for http://) the network decides what your VM runs.\n", req.Source)
	}
	p := a.newProgress(req.Source)
	img, err := c.ImportImage(ctx, req, p.event)
	p.finish()
	return img, err
}

func isURL(s string) bool {
	ls := strings.ToLower(s)
	return strings.HasPrefix(ls, "http://") || strings.HasPrefix(ls, "https://")
}

// buildText says which upstream build an image is.
func buildText(img api.Image) string {
	if img.Build != "" {
		return "build " + img.Build
	}
	if img.UpstreamDigest != "" {
		return "latest build (" + shortDigest(img.UpstreamDigest) + ")"
	}
	return "local"
}

// shortDigest keeps the algorithm and 12 hex digits.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}
