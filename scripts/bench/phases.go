package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
)

// Where the time of a boot goes: the host's own phases of the last start
// (`fvm inspect`: api.StartReport), and for a cold boot, when the guest's
// serial console first printed what marks each stage of its boot.

// startPhases is the host's report of a VM's last start, as one line.
func (b *bench) startPhases(name string) string {
	var v api.VM
	out, err := b.run("inspect", name)
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.LastStart == nil {
		return "no phases (an fvm without start reports?)"
	}
	var s []string
	for _, p := range v.LastStart.Phases {
		s = append(s, fmt.Sprintf("%s %s", p.Name, dur(p.Seconds)))
	}
	line := strings.Join(s, " · ")
	if v.LastStart.Via != "" {
		line += " (re-identified via " + v.LastStart.Via + ")"
	}
	return line
}

// serialMarks are what a cold boot of a Debian image prints on its serial
// console at each stage, in order: the kernel started (firmware and boot
// loader done), systemd started in the real root (initramfs done),
// cloud-init's first and network stages or fvm-init's provisioning (fvm's
// image booted directly: cloud-init is off), the login prompt. A boot shows
// one of the two middle paths; the marks it does not show are left out.
var serialMarks = []struct{ name, text string }{
	{"firmware+loader", "Linux version"},
	{"kernel+initrd", "Welcome to "},
	{"systemd→cloud-init", "running 'init-local'"},
	{"cloud-init local", "running 'init'"},
	{"systemd→fvm-init done", "fvm-init: provisioned"},
	{"→ login prompt", "login:"},
}

// watchSerial notes, from t0, when the VM's serial log first shows each
// mark, until the last shows or stop is closed; the result is read from done.
func (b *bench) watchSerial(name string, t0 time.Time, stop <-chan struct{}) <-chan string {
	done := make(chan string, 1)
	path := filepath.Join(b.home, "data", "vms", name, store.SerialLog)
	last := serialMarks[len(serialMarks)-1].name
	go func() {
		at := map[string]time.Duration{}
	poll:
		for at[last] == 0 {
			if bs, err := os.ReadFile(path); err == nil {
				for _, m := range serialMarks {
					if _, seen := at[m.name]; !seen && bytes.Contains(bs, []byte(m.text)) {
						at[m.name] = time.Since(t0)
					}
				}
			}
			select {
			case <-stop:
				break poll
			case <-time.After(20 * time.Millisecond):
			}
		}
		var s []string
		var prev time.Duration
		for _, m := range serialMarks {
			d, ok := at[m.name]
			if !ok {
				continue
			}
			s = append(s, fmt.Sprintf("%s %s", m.name, dur((d-prev).Seconds())))
			prev = d
		}
		done <- "serial: " + strings.Join(s, " · ")
	}()
	return done
}

func dur(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.1f s", s)
}
