package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/remote"
)

// `fvm context`: named hosts of other machines, as docker's contexts. The
// verbs are small and share the store, so they live together here.

func newContextCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "context",
		Short: "Manage contexts: named fvm hosts on other machines, reached over SSH",
		Long: `A context names the fvm host of another machine, reached through your own
OpenSSH (its ~/.ssh/config aliases, keys, ssh-agent, ProxyJump and known_hosts):
every fvm command then drives that machine's VMs exactly as it drives this
machine's. The server needs fvm on the PATH of its SSH sessions; its host starts
on demand. "default" is this machine.

Which host a command uses: --host ssh://..., else --context NAME, else
FVM_HOST, else FVM_CONTEXT, else the context "fvm context use" picked.
Contexts are kept in contexts.json in the config dir (mode 0600).

Files named on the command line are this machine's and travel to the host
(image import, --iso, --ssh-key, cp); -v HOST_PATH names a directory on the
VM's host. Guest ports and the web console come back to this machine's
127.0.0.1 through tunnels (fvm port-forward, fvm display).`,
		Example: `  fvm context create lab ssh://me@lab.example.org --description "the big box"
  fvm context use lab && fvm ps
  fvm --context default ps
  FVM_HOST=ssh://me@lab:2222 fvm run -d debian-local web1`,
	}
	cmd.AddCommand(newContextCreateCmd(a), newContextLsCmd(a), newContextUseCmd(a), newContextRmCmd(a), newContextInspectCmd(a))
	return cmd
}

func newContextCreateCmd(a *app) *cobra.Command {
	var desc string
	cmd := &cobra.Command{
		Use:     "create NAME ssh://[user@]server[:port]",
		Short:   "Name a remote fvm host",
		Example: "  fvm context create lab ssh://me@lab.example.org\n  fvm context create box ssh://box   # an alias of ~/.ssh/config",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.contexts().Create(remote.Context{Name: args[0], Host: args[1], Description: desc}); err != nil {
				return err
			}
			fmt.Fprintln(a.out, args[0])
			a.phase("Context %s created: `fvm context use %s` makes it the default, `fvm --context %s ps` uses it once", args[0], args[0], args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&desc, "description", "", "what the context is")
	return cmd
}

func newContextLsCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List contexts; * marks the current one",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			list, cur, err := a.contexts().List()
			if err != nil {
				return err
			}
			if sel, err := a.selection(); err == nil && sel.Context != "" {
				cur = sel.Context // --context or FVM_CONTEXT for this command
			}
			if format == "json" {
				type row struct {
					remote.Context
					Current bool `json:"current"`
				}
				rows := []row{}
				for _, c := range list {
					rows = append(rows, row{c, c.Name == cur})
				}
				return writeJSON(a.out, rows)
			}
			tw := tabwriter.NewWriter(a.out, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tHOST\tDESCRIPTION")
			for _, c := range list {
				name, host := c.Name, c.Host
				if c.Name == cur {
					name += " *"
				}
				if host == "" {
					host = "this machine"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", name, host, clean(c.Description))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func newContextUseCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "use NAME",
		Short: "Make a context the one commands use (default: this machine)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.contexts().Use(args[0]); err != nil {
				return err
			}
			fmt.Fprintln(a.out, args[0])
			a.phase("Current context is now %s", args[0])
			return nil
		},
	}
}

func newContextRmCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove contexts (the VMs on their hosts stay)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range args {
				if err := a.contexts().Remove(name, force); err != nil {
					return err
				}
				fmt.Fprintln(a.out, name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove the current context too (this machine becomes current)")
	return cmd
}

func newContextInspectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect [NAME...]",
		Short: "Show contexts as JSON (default: the current one)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				sel, err := a.selection()
				if err != nil {
					return err
				}
				if sel.Context == "" { // --host or FVM_HOST: no stored context
					return writeJSON(a.out, []remote.Context{{Host: sel.Host.String()}})
				}
				args = []string{sel.Context}
			}
			var out []remote.Context
			for _, name := range args {
				c, err := a.contexts().Get(name)
				if err != nil {
					return err
				}
				out = append(out, c)
			}
			return writeJSON(a.out, out)
		},
	}
}
