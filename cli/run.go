package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
)

func newRunCmd(a *app) *cobra.Command {
	var f vmFlags
	var u urlFlags
	var detach, rm, wait bool
	var from string
	cmd := &cobra.Command{
		Use:   "run IMAGE [ARCH] [NAME] [-- CMD ARGS...] | --from SRC[:TAG] [NAME]",
		Short: "Create and boot a VM, then open a shell or run a command in it",
		Long: `Create a VM from IMAGE, boot it and connect over SSH with a pinned host key.
IMAGE is a local image name (see "fvm images"), a catalog image pulled when not
cached (debian, debian:12, ubuntu:noble; see "fvm images --available"), a path
to a qcow2/raw disk file, or an http(s) URL of one with --checksum.

Without -d and without a command it opens an interactive shell. With a command
after "--" it runs it, prints its output and exits with its status.`,
		Example: `  fvm run debian
  fvm run --rm debian:12 -- uname -a
  fvm run debian-local
  fvm run debian-local amd64 web1 -p 8080:80 -d
  fvm run --rm debian-local -- uname -a
  fvm run ./disk.qcow2 --cpus 4 --memory 4G
  fvm run --from web1 test1 -- make test
  fvm run https://example.org/disk.qcow2 --checksum sha256:4f1c...`,
		RunE: func(cmd *cobra.Command, args []string) error {
			args, command := splitDash(cmd, args)
			if detach && rm {
				return errors.New("--rm and -d do not go together: a detached VM is removed with `fvm rm -f NAME`")
			}
			if detach && command != "" {
				return errors.New("-d and a command do not go together: drop -d to run the command, or run it later with `fvm exec`")
			}
			if from != "" { // a clone of a VM (runfrom.go)
				return a.runFrom(cmd, args, from, command, detach, rm, wait)
			}
			spec, err := f.spec(a, cmd, args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			if err := precheck(ctx, c, spec); err != nil {
				return err
			}
			if err := a.ensureImage(ctx, c, &spec, u); err != nil { // pull or import first, with progress
				return err
			}
			t0 := time.Now()
			v, err := c.Create(ctx, api.CreateRequest{Spec: spec, Cold: f.cold})
			if err != nil {
				return err
			}
			name := v.Spec.Name
			a.phase("Created VM %s from %s%s in %s", name, spec.Image, warmText1(v), since(t0))
			if v.Notice != "" {
				a.phase("Note: %s", v.Notice)
			}
			cleanup := a.endRun(ctx, c, name, rm)
			tb := time.Now()
			if v, err = c.Start(ctx, name); err != nil {
				return cleanup(err)
			}
			if v.Notice != "" {
				a.phase("Note: %s", v.Notice)
			}
			a.phase("%s %s (%s, %s): hypervisor up in %s", bootVerb(v), name, v.Backend, accelText(v.Accel), since(tb))
			if err := a.waitReady(ctx, c, v, t0, wait); err != nil {
				return cleanup(err)
			}
			if detach {
				fmt.Fprintf(a.out, "%s\n", name)
				if !wait {
					a.phase("cloud-init may still be running (user-data, packages): `fvm wait %s` waits for it", name)
				}
				a.phase("Connect with `fvm ssh %s`; stop with `fvm stop %s`", name, name)
				return nil
			}
			code, err := a.remote(ctx, c, name, command)
			if err := cleanup(err); err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	f.register(cmd)
	a.withBackends(cmd)
	u.register(cmd)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "run in the background and print the VM name")
	cmd.Flags().BoolVar(&rm, "rm", false, "remove the VM when the shell or command exits")
	cmd.Flags().StringVar(&from, "from", "", "start a clone of a VM instead of an image: SRC (a snapshot of it taken now) or SRC:TAG (see fvm clone)")
	cmd.Flags().BoolVar(&wait, "wait", false, "before the shell, command or -d returns, wait until cloud-init finished (user-data, packages)")
	return cmd
}

// endRun is what a run does with its VM when the shell or command ended
// with err: --rm removes it; otherwise an interrupted run says it is left
// running. It returns err, joined with a failed removal's.
func (a *app) endRun(ctx context.Context, c *client.Client, name string, rm bool) func(error) error {
	return func(err error) error {
		if !rm {
			if errors.Is(err, context.Canceled) {
				a.phase("VM %s left running: `fvm ssh %s` to connect, `fvm rm -f %s` to remove it", name, name, name)
			}
			return err
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rerr := c.Remove(rctx, name, true); rerr != nil {
			return errors.Join(err, rerr)
		}
		a.phase("VM %s removed", name)
		return err
	}
}

// splitDash separates positional args from a command given after "--".
func splitDash(cmd *cobra.Command, args []string) ([]string, string) {
	i := cmd.ArgsLenAtDash()
	if i < 0 {
		return args, ""
	}
	return args[:i], shellJoin(args[i:])
}

// shellJoin quotes args for the remote shell so `-- echo "a b"` keeps its words.
// A single argument is passed as a shell command line, as ssh does, so
// `fvm ssh vm -- 'cd /tmp && ls'` works too.
func shellJoin(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	q := make([]string, len(args))
	for i, s := range args {
		if s != "" && strings.IndexFunc(s, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			q[i] = s
			continue
		}
		q[i] = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// phase prints a progress line to stderr, so stdout stays the command's own output.
func (a *app) phase(format string, args ...any) {
	fmt.Fprintf(a.errOut, "==> %s\n", clean(fmt.Sprintf(format, args...)))
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

func accelText(accel string) string {
	if accel == "tcg" {
		return "tcg: software emulation, slow; see `fvm check`"
	}
	if accel == "" {
		return "qemu"
	}
	return accel
}
