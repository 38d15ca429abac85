// Command bench measures fvm side by side in one run and writes the results as
// a table (stdout), JSON (-json) and Markdown (-md, BENCHMARKS.md). Each row
// compares two things measured in the same run, because this machine is noisy:
// the ratio means more than either time. `make bench` runs it; it is not part
// of CI's pass/fail.
//
//	go run ./scripts/bench -fvm bin/fvm [-rows exec,...] [-home DIR]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one measurement: a value, and optionally what it is compared with.
type Row struct {
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"` // s, ms, MB, x
	Versus  string  `json:"versus,omitempty"`
	Against float64 `json:"against,omitempty"`
	Ratio   float64 `json:"ratio,omitempty"` // Value / Against
	Target  string  `json:"target,omitempty"`
	Note    string  `json:"note,omitempty"`
}

// bench is the shared state of one run.
type bench struct {
	fvm     string
	home    string
	rows    []Row
	vms     []string // to remove at the end
	idleRSS float64  // the host's, before any VM
}

type rowFunc func(b *bench) error

// classicImage is fvm's image as the classic recipe builds it, for comparison.
const classicImage = "debian-classic"

// rowsByName are the benchmarks, run in this order.
var rowsByName = []struct {
	name string
	fn   rowFunc
}{
	{"exec", benchExec},
	{"boot", benchBoot},
	{"create", benchCreate},
	{"ps", benchPs},
	{"remote", benchRemote},
	{"share", benchShare},
	{"snapshot", benchSnapshot},
	{"libvirt", benchLibvirt},
}

func main() {
	fvmBin := flag.String("fvm", "bin/fvm", "the fvm binary")
	home := flag.String("home", os.Getenv("FVM_BENCH_HOME"), "FVM_HOME for the run (default: a new temporary one; keep one to reuse its built image)")
	only := flag.String("rows", "", "comma-separated rows to run (default all: "+names()+")")
	jsonOut := flag.String("json", "bench.json", "write the rows as JSON here (\"\" for none)")
	mdOut := flag.String("md", "BENCHMARKS.md", "write the rows as Markdown here (\"\" for none)")
	flag.Parse()

	b := &bench{fvm: abs(*fvmBin), home: *home}
	if b.home == "" {
		d, err := os.MkdirTemp("", "fvm-bench.")
		if err != nil {
			fatal(err)
		}
		b.home = d
		defer os.RemoveAll(d)
	}
	os.Setenv("FVM_HOME", b.home)
	// Warm snapshots only when a row asks (`fvm image warm`): a background build would skew the others.
	os.MkdirAll(b.home, 0o755)
	os.WriteFile(filepath.Join(b.home, "config.yaml"), []byte("images:\n  warm: false\n"), 0o644)
	defer b.cleanup()
	want := map[string]bool{}
	for _, r := range strings.Split(*only, ",") {
		if r = strings.TrimSpace(r); r != "" {
			want[r] = true
		}
	}
	if _, err := b.run("image", "build", "debian"); err != nil {
		fatal(fmt.Errorf("build the image: %w", err))
	}
	if _, err := b.run("image", "build", "debian", "--recipe", "classic", "--name", classicImage); err != nil {
		fatal(fmt.Errorf("build the classic image: %w", err))
	}
	for _, r := range rowsByName {
		if len(want) > 0 && !want[r.name] {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s...\n", r.name)
		if err := r.fn(b); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", r.name, err)
			b.rows = append(b.rows, Row{Name: r.name, Note: "failed: " + err.Error()})
		}
	}
	b.print()
	if *jsonOut != "" {
		j, _ := json.MarshalIndent(struct {
			Date string `json:"date"`
			Rows []Row  `json:"rows"`
		}{time.Now().UTC().Format(time.RFC3339), b.rows}, "", "  ")
		os.WriteFile(*jsonOut, append(j, '\n'), 0o644)
	}
	if *mdOut != "" {
		os.WriteFile(*mdOut, []byte(b.markdown()), 0o644)
	}
}

func names() string {
	var n []string
	for _, r := range rowsByName {
		n = append(n, r.name)
	}
	return strings.Join(n, ",")
}

func (b *bench) add(r Row) {
	if r.Against != 0 {
		r.Ratio = r.Value / r.Against
	}
	b.rows = append(b.rows, r)
}

// run runs fvm with args and returns its stdout.
func (b *bench) run(args ...string) (string, error) {
	cmd := exec.Command(b.fvm, args...)
	var se strings.Builder
	cmd.Stderr = &se
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("fvm %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(se.String()))
	}
	return string(out), nil
}

// timed runs fvm with args and returns how long it took.
func (b *bench) timed(args ...string) (time.Duration, error) {
	t0 := time.Now()
	_, err := b.run(args...)
	return time.Since(t0), err
}

// vm boots a VM for a row (removed at the end of the run).
func (b *bench) vm(name string, extra ...string) error {
	b.vms = append(b.vms, name)
	_, err := b.run(append([]string{"run", "-d", "debian-local", name}, extra...)...)
	return err
}

func (b *bench) cleanup() {
	for _, n := range b.vms {
		b.run("rm", "-f", n)
	}
	if pid := b.hostPID(); pid > 0 {
		if p, err := os.FindProcess(pid); err == nil {
			p.Signal(os.Interrupt)
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func secs(d time.Duration) float64 { return d.Seconds() }

func (b *bench) print() {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tVALUE\tVERSUS\tRATIO\tTARGET\tNOTE")
	for _, r := range b.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, value(r.Value, r.Unit), versus(r), ratio(r), r.Target, r.Note)
	}
	tw.Flush()
}

func (b *bench) markdown() string {
	var s strings.Builder
	fmt.Fprintf(&s, "# fvm benchmarks\n\nMeasured by `make bench` (scripts/bench) on %s, each row side by side in one run, on %d CPUs (%s/%s), VMs from debian-local.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	s.WriteString("| row | value | versus | ratio | target | note |\n|---|---|---|---|---|---|\n")
	for _, r := range b.rows {
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s | %s |\n", r.Name, value(r.Value, r.Unit), versus(r), ratio(r), r.Target, r.Note)
	}
	return s.String()
}

func value(v float64, unit string) string {
	if v == 0 && unit == "" {
		return "-"
	}
	switch unit {
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

func versus(r Row) string {
	if r.Versus == "" {
		return ""
	}
	return fmt.Sprintf("%s: %s", r.Versus, value(r.Against, r.Unit))
}

func ratio(r Row) string {
	if r.Ratio == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", r.Ratio)
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
