package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

func newImageImportCmd(a *app) *cobra.Command {
	var req api.ImportRequest
	var arch string
	cmd := &cobra.Command{
		Use:   "import FILE|URL",
		Short: "Cache a qcow2 or raw disk from a file or URL as a named image",
		Long: `Import a qcow2 or raw disk image (detected by content) into the cache and
register it under --name (default: derived from the file name). A file is
this machine's: a host on another machine (--host, --context) gets it uploaded,
checked by its SHA-256 on arrival. A URL is fetched by the host and needs
--checksum with the digest its publisher lists, or --insecure-skip-verify to
use it unverified. qcow2 images that reference a backing or data file are
refused.`,
		Example: `  fvm image import ./disk.qcow2 --name mydisk
  fvm image import https://example.org/x.qcow2 --name x --checksum sha256:4f1c...
  fvm run mydisk`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Source = args[0]
			if arch != "" {
				p, err := vm.ParseArch(arch)
				if err != nil {
					return err
				}
				req.Arch = p
			}
			if !isURL(req.Source) {
				abs, err := filepath.Abs(req.Source)
				if err != nil {
					return err
				}
				if _, err := os.Stat(abs); err != nil {
					return fmt.Errorf("image file %q: %w", req.Source, err)
				}
				req.Source = abs
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			t0 := time.Now()
			var img api.Image
			if !isURL(req.Source) && c.Remote() { // the host cannot see this machine's file (upload.go)
				img, err = a.importFile(cmd.Context(), c, req.Source, req)
			} else {
				img, err = a.importImage(cmd.Context(), c, req)
			}
			if err != nil {
				return err
			}
			verified := "verified against " + shortDigest(img.UpstreamDigest)
			if img.UpstreamDigest == "" {
				verified = "not verified"
			}
			a.phase("Imported %s (%s, %s, %s, %s) in %s", img.Name, img.Format, vm.FormatSize(img.Size), shortDigest(img.Digest), verified, since(t0))
			fmt.Fprintln(a.out, img.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Name, "name", "", "name to register the image under (default: from the file name)")
	cmd.Flags().StringVar(&req.Checksum, "checksum", "", "expected sha256:HEX or sha512:HEX of the file (required for URLs)")
	cmd.Flags().BoolVar(&req.InsecureSkipVerify, "insecure-skip-verify", false, "import a URL without a checksum (dangerous)")
	cmd.Flags().StringVar(&arch, "arch", "", "architecture of the image (default: the host's)")
	cmd.Flags().StringVar(&req.Version, "version", "", "version label shown by `fvm images`")
	return cmd
}
