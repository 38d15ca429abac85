package cli

import (
	"bytes"
	"fmt"
	"image/png"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/store"
)

func newScreenshotCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "screenshot NAME FILE.png",
		Short:   "Save a running VM's screen as a PNG image (- writes it to standard output)",
		Example: "  fvm screenshot web1 web1.png",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, file := args[0], args[1]
			if file != "-" && !strings.EqualFold(filepath.Ext(file), ".png") {
				return fmt.Errorf("%q: a screenshot is a PNG image: name the file NAME.png (or - for standard output)", file)
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			b, err := c.Screenshot(cmd.Context(), name)
			if err != nil {
				return err
			}
			cfg, err := png.DecodeConfig(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("screenshot of %q: the host sent no PNG: %w", name, err)
			}
			if file == "-" {
				_, err := a.out.Write(b)
				return err
			}
			if err := store.WriteFileAtomic(file, b, 0o644); err != nil {
				return fmt.Errorf("save the screenshot: %w", err)
			}
			a.phase("Saved %s's screen (%dx%d) to %s", name, cfg.Width, cfg.Height, file)
			return nil
		},
	}
}
