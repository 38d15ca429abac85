package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Sound. A VM with a display has a sound card: Intel HD Audio (ich9-intel-hda
// with an output-only codec: nothing records the host's microphone), which
// every guest kernel drives and QEMU migrates, so suspend, resume and warm
// clones keep working. QEMU 8.2's virtio-sound is not used: this QEMU (7.2)
// has none to test its migration with. The card is the last device on the
// command line, so the devices before it keep their PCI addresses (and a
// guest's network config its interface name). Where the guest's sound goes is
// the host's business, not part of the saved state (deviceSet leaves it out):
// CoreAudio on macOS, PulseAudio (or PipeWire's PulseAudio server) on Linux
// where one runs, else nowhere. FVM_QEMU_AUDIODEV overrides it with an
// -audiodev backend ("wav" alone writes sound.wav in the VM's directory).

// AudioDevEnv overrides the host side of QEMU VMs' sound.
const AudioDevEnv = "FVM_QEMU_AUDIODEV"

// SoundFile is where FVM_QEMU_AUDIODEV=wav records a VM's sound.
const SoundFile = "sound.wav"

// soundArgs are the sound card and its host backend. The codec has no mixer
// (mixer=off): fvm's guests leave ALSA's Master muted (no mixer tool runs at
// boot), and QEMU 7.2 applies that mute only to a stream restored by a
// migration, so every sound after a resume was silent while the same guest
// played before it. Without a mixer the guest's samples pass as they are
// (desktops scale them in software).
func soundArgs(audiodev string) []string {
	if audiodev == "" {
		audiodev = "none"
	}
	return []string{
		"-audiodev", audiodev + ",id=snd0",
		"-device", "ich9-intel-hda,id=hda",
		"-device", "hda-output,bus=hda.0,audiodev=snd0,mixer=off",
	}
}

// chooseAudioDev picks the -audiodev backend (without its id) for a VM in
// dir: the override, CoreAudio on macOS, PulseAudio where a server runs and
// this QEMU has the driver (has), else none.
func chooseAudioDev(goos, dir string, getenv func(string) string, exists func(string) bool, has func(driver string) bool) string {
	if v := getenv(AudioDevEnv); v != "" {
		if v == "wav" {
			return "wav,path=" + escape(filepath.Join(dir, SoundFile))
		}
		return v
	}
	if goos == "darwin" {
		return "coreaudio"
	}
	server := getenv("PULSE_SERVER") != ""
	if rt := getenv("XDG_RUNTIME_DIR"); rt != "" && exists(filepath.Join(rt, "pulse", "native")) {
		server = true
	}
	if server && has("pa") {
		return "pa"
	}
	return "none"
}

// audioDev is chooseAudioDev for this host and qemuPath.
func (d *Driver) audioDev(ctx context.Context, qemuPath, dir string) string {
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	return chooseAudioDev(runtime.GOOS, dir, os.Getenv, exists, func(drv string) bool {
		return audioDrivers(ctx, qemuPath)[drv]
	})
}

var audioProbes sync.Map // qemu path + size + mtime → its audio drivers

// audioDrivers are the -audiodev drivers qemuPath has (its modules that
// load), from `-audiodev help`, once per binary.
func audioDrivers(ctx context.Context, qemuPath string) map[string]bool {
	st, err := os.Stat(qemuPath)
	if err != nil {
		return nil
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", qemuPath, st.Size(), st.ModTime().UnixNano())
	if v, ok := audioProbes.Load(key); ok {
		return v.(map[string]bool)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, qemuPath, "-audiodev", "help")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return nil
	}
	drivers := parseAudioHelp(out.String())
	audioProbes.Store(key, drivers)
	return drivers
}

// parseAudioHelp reads `qemu-system-* -audiodev help`: a header, then one
// driver per line (missing modules are reported on stderr, not listed).
func parseAudioHelp(s string) map[string]bool {
	drivers := map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.Contains(l, " ") && !strings.HasSuffix(l, ":") {
			drivers[l] = true
		}
	}
	return drivers
}
