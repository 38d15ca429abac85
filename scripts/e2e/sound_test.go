//go:build e2e

package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver/qemu"
)

// The e2e host records every VM's sound in sound.wav in its directory
// (TestMain sets FVM_QEMU_AUDIODEV=wav): the same sound card as on any host,
// only its output goes to a file the tests can read.

// playTone plays a 440 Hz tone for two seconds in the guest through the
// kernel's OSS emulation of the sound card (/dev/dsp: 8-bit mono 8 kHz), so
// no player has to be installed in the image.
const playTone = `sudo modprobe snd-pcm-oss && sudo sh -c 'perl -e "for \$i (0..15999) { print chr(128 + int(100*sin(2*3.14159265*440*\$i/8000))) }" > /dev/dsp'`

// TestSound: a VM has a sound card the guest lists; a tone played in the guest
// reaches the host's audio backend as non-silent samples; and the card does
// not break what QEMU must migrate: the VM is a clone of its image's warm
// snapshot (restored with the card), then suspended and resumed, and a tone
// still plays. --sound=false leaves the card out.
func TestSound(t *testing.T) {
	ensureImage(t)
	const name = "snd1"
	t0 := time.Now()
	mustFVM(t, "image", "warm", "debian-local", "--memory", "1G") // the snapshot clones are restored from (made now if missing)
	t.Logf("MEASURE warm snapshot ready (made or found): %s", time.Since(t0))
	t0 = time.Now()
	r := fvm(t, "run", "-d", "debian-local", name, "--memory", "1G")
	if r.code != 0 {
		t.Fatalf("run: %s", r.stderr)
	}
	defer fvm(t, "rm", "-f", name)
	t.Logf("MEASURE clone run -d → SSH: %s", time.Since(t0))
	if v := inspectVM(t, name); v.Boot != "clone" {
		t.Fatalf("boot %q, want a clone of the warm snapshot (its sound card restored): %s", v.Boot, r.stderr)
	}
	if cards := mustFVM(t, "exec", name, "--", "cat /proc/asound/cards"); !strings.Contains(cards, "HDA-Intel") {
		t.Fatalf("the guest lists no HD Audio card:\n%s", cards)
	}
	wav := filepath.Join(layout.InstanceDir(name), qemu.SoundFile)
	tone := func(when string) {
		t.Helper()
		t0 := time.Now()
		mustFVM(t, "exec", name, "--", playTone)
		var peak, loud int
		for i := 0; i < 20; i++ { // QEMU writes what the card played as it goes
			if peak, loud = wavLevel(t, wav); loud > 8000 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("MEASURE %s: tone played in %s; %s: peak %d, %d loud samples", when, time.Since(t0).Round(time.Millisecond), wav, peak, loud)
		if peak < 2000 || loud < 8000 {
			t.Fatalf("%s: the tone did not reach the host (peak %d, %d samples over 1000)", when, peak, loud)
		}
	}
	tone("clone")

	t0 = time.Now()
	mustFVM(t, "suspend", name)
	t.Logf("MEASURE suspend with the sound card: %s", time.Since(t0))
	t0 = time.Now()
	if r := fvm(t, "start", name); r.code != 0 || !strings.Contains(r.stderr, "Resumed") {
		t.Fatalf("start after suspend did not resume: %+v", r)
	}
	t.Logf("MEASURE resume with the sound card → SSH: %s", time.Since(t0))
	tone("after resume") // with the codec's mixer, QEMU 7.2 restored the guest's muted Master: silence

	t.Run("sound-false", func(t *testing.T) {
		const quiet = "snd0"
		mustFVM(t, "create", "debian-local", quiet, "--memory", "1G", "--sound=false", "--cold")
		defer fvm(t, "rm", "-f", quiet)
		if v := inspectVM(t, quiet); !v.Spec.NoSound {
			t.Fatalf("spec %+v", v.Spec)
		}
		mustFVM(t, "start", quiet, "--no-wait")
		if args := qemuArgs(t, quiet); strings.Contains(args, "intel-hda") || strings.Contains(args, "-audiodev") {
			t.Errorf("--sound=false VM has a sound card: %s", args)
		}
		if args := qemuArgs(t, name); !strings.Contains(args, "-device ich9-intel-hda,id=hda -device hda-output,bus=hda.0,audiodev=snd0,mixer=off") {
			t.Errorf("the other VM's sound card: %s", args)
		}
	})
}

// wavLevel reads a WAV file QEMU is writing (its sizes are filled in only at
// the end) and returns the peak and the number of 16-bit samples over 1000.
func wavLevel(t *testing.T, path string) (peak, loud int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("sound file: %v", err)
	}
	if len(b) < 44 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s is not a WAV file (%d bytes)", path, len(b))
	}
	i := bytes.Index(b, []byte("fmt "))
	if i < 0 || binary.LittleEndian.Uint16(b[i+22:]) != 16 {
		t.Fatalf("%s: not 16-bit PCM", path)
	}
	d := bytes.Index(b, []byte("data"))
	if d < 0 {
		t.Fatalf("%s: no data chunk", path)
	}
	for p := d + 8; p+1 < len(b); p += 2 {
		v := int(int16(binary.LittleEndian.Uint16(b[p:])))
		if v < 0 {
			v = -v
		}
		peak = max(peak, v)
		if v > 1000 {
			loud++
		}
	}
	return peak, loud
}

func inspectVM(t *testing.T, name string) api.VM {
	t.Helper()
	var v api.VM
	if err := json.Unmarshal([]byte(mustFVM(t, "inspect", name)), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// qemuArgs is the command line of the VM's QEMU.
func qemuArgs(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", readPID(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), " ")
}
