package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
)

func newCreateCmd(a *app) *cobra.Command {
	var f vmFlags
	var u urlFlags
	cmd := &cobra.Command{
		Use:   "create IMAGE [ARCH] [NAME] | --iso PATH [ARCH] [NAME] | --name NAME",
		Short: "Create a VM without starting it",
		Example: `  fvm create debian-local web1 --disk 40G
  fvm start web1
  fvm create u1 --iso ubuntu-24.04-live-server-amd64.iso --auto-install --disk 20G --memory 4G
  fvm create --name scratch --disk 20 && fvm start scratch --iso installer.iso   # blank, installer later`,
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := f.spec(a, cmd, args)
			if err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			if err := precheck(cmd.Context(), c, spec); err != nil {
				return err
			}
			if spec.ISO == "" && !spec.Blank { // an installer ISO or a blank VM has no image to pull
				if err := a.ensureImage(cmd.Context(), c, &spec, u); err != nil { // pull or import first, with progress
					return err
				}
			}
			req := api.CreateRequest{Spec: spec, Cold: f.cold}
			if spec.ISO != "" && c.Remote() { // this machine's ISO, which that host cannot see (upload.go)
				if err := a.uploadISO(cmd.Context(), c, &req); err != nil {
					return err
				}
			}
			t0 := time.Now()
			v, err := c.Create(cmd.Context(), req)
			if err != nil {
				return err
			}
			a.phase("Created VM %s%s in %s", v.Spec.Name, warmText1(v), since(t0))
			if v.Notice != "" {
				a.phase("Note: %s", v.Notice)
			}
			a.installNote(v)
			a.blankNote(v)
			fmt.Fprintln(a.out, v.Spec.Name)
			return nil
		},
	}
	f.register(cmd)
	a.withBackends(cmd)
	f.registerInstall(cmd)
	u.register(cmd)
	return cmd
}
