package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/vm"
)

func newPsCmd(a *app) *cobra.Command {
	var all bool
	var format string
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List running VMs (-a: all VMs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.listVMs(cmd, all, format)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show stopped VMs too")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func newLsCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List all VMs (also: list)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.listVMs(cmd, true, format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func (a *app) listVMs(cmd *cobra.Command, all bool, format string) error {
	if err := checkFormat(format); err != nil {
		return err
	}
	c, err := a.client(cmd.Context())
	if err != nil {
		return err
	}
	vms, err := c.List(cmd.Context())
	if err != nil {
		return err
	}
	shown := vms[:0]
	for _, v := range vms {
		if all || v.State.Active() {
			shown = append(shown, v)
		}
	}
	if format == "json" {
		return writeJSON(a.out, shown)
	}
	tw := tabwriter.NewWriter(a.out, 0, 0, 3, ' ', 0)
	hosts := newHostColumn(shown) // the libvirt backend's: which host each VM is on
	fmt.Fprintln(tw, "NAME\tSTATE\tBACKEND\t"+hosts.header()+"IMAGE\tARCH\tCPUS\tMEMORY\tDISK\tSSH\tPORTS\tCREATED")
	var broken []string
	for _, v := range shown {
		s := v.Spec
		if v.Broken != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t%s-\t-\t-\t-\t-\t-\t-\t-\n", cleanLine(s.Name), vm.Broken, hosts.cell(v))
			broken = append(broken, fmt.Sprintf("%s is broken: %s", s.Name, cleanLine(v.Broken)))
			continue
		}
		ssh := "-"
		if v.SSHPort != 0 && v.State == vm.Running {
			ssh = fmt.Sprintf("127.0.0.1:%d", v.SSHPort)
		}
		var ports []string
		for _, p := range s.Ports {
			ports = append(ports, p.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Name, v.State, cleanLine(dash(v.Backend)), hosts.cell(v), cleanLine(shortImage(imageOf(s))), cleanLine(string(s.Arch)), s.CPUs,
			vm.FormatSize(int64(s.MemoryMiB)<<20), vm.FormatSize(s.DiskBytes), ssh, dash(strings.Join(ports, ",")), ago(v.CreatedAt))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, b := range broken {
		fmt.Fprintln(a.errOut, b)
	}
	return nil
}

func checkFormat(f string) error {
	if f != "table" && f != "json" {
		return fmt.Errorf("--format %q is unknown: use table or json", f)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func shortImage(s string) string {
	if i := strings.LastIndex(s, "/"); i >= 0 && len(s) > 30 {
		return "…" + s[i:]
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
