package helper

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

// platform is what the helper needs from the OS: the VM (and its window,
// driven through the main loop) and the framework's capabilities.
type platform struct {
	newVM func(loop *mainLoop) NewVM
	probe func() (vzd.HostCaps, error)
	// session says why this process cannot show windows (nil: it can);
	// nil for a platform without windows to check.
	session func() error
}

const usage = `usage: fvm-vz run --dir VMDIR   own the vz VM planned in VMDIR until it stops
       fvm-vz probe            print what Virtualization.framework offers here (JSON)
fvm-vz is started by the fvm host (fvm daemon or fvm.app); it is not meant to be run by hand.`

// Main is fvm-vz's entry point. The caller has locked the main goroutine to
// the main thread, where AppKit runs once a display window is first shown.
func Main(args []string) int { return mainWith(args, native, os.Stdout, os.Stderr) }

func mainWith(args []string, p platform, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && args[0] == "probe":
		caps, err := p.probe()
		if err != nil {
			fmt.Fprintf(stderr, "fvm-vz: %v\n", err)
			return 1
		}
		json.NewEncoder(stdout).Encode(caps)
		return 0
	case len(args) == 3 && args[0] == "run" && args[1] == "--dir":
		if p.session != nil {
			windowSession = p.session
		}
		log := slog.New(slog.NewTextHandler(stderr, nil))
		// gvisor-tap-vsock's logs: warnings only, and not the link closing at exit.
		logrus.SetOutput(dropLines{stderr, "use of closed network connection"})
		logrus.SetLevel(logrus.WarnLevel)
		loop := newMainLoop()
		exit := make(chan int, 1)
		go func() {
			code := 0
			if err := Run(context.Background(), args[2], p.newVM(loop), log); err != nil {
				fmt.Fprintf(stderr, "fvm-vz: %v\n", err)
				code = 1
			}
			exit <- code
		}()
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			code := <-exit
			cancel()
			// The main thread may be in AppKit's run loop, which never returns.
			os.Exit(code)
		}()
		loop.Run(ctx)
		select {} // os.Exit above ends the process
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

// dropLines writes what it is given unless it contains drop.
type dropLines struct {
	w    io.Writer
	drop string
}

func (d dropLines) Write(p []byte) (int, error) {
	if strings.Contains(string(p), d.drop) {
		return len(p), nil
	}
	return d.w.Write(p)
}
