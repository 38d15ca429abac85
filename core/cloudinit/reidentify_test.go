package cloudinit

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func testIdentity(t *testing.T) Identity {
	c := testConfig(t)
	return Identity{
		Hostname: "clone1", User: "fvm", AuthorizedKeys: c.AuthorizedKeys,
		HostKeyPrivate: c.HostKeyPrivate, HostKeyPublic: c.HostKeyPublic,
		MachineID: strings.Repeat("ab", 16), InstanceID: "i-0011223344556677", OldInstanceID: "i-8899aabbccddeeff",
		Entropy: bytes.Repeat([]byte{7}, 64), Now: time.Unix(1764600000, 123456789), SetClock: true, GrowDisk: true,
	}
}

func TestReidentifyScript(t *testing.T) {
	id := testIdentity(t)
	s, err := ReidentifyScript(id)
	if err != nil {
		t.Fatal(err)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		c := exec.Command(bash, "-n")
		c.Stdin = strings.NewReader(s)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("bash -n: %v: %s\n%s", err, out, s)
		}
	}
	for _, want := range []string{
		"set -eu",
		"rm -f /etc/ssh/ssh_host_*",
		"printf '" + escapeBytes([]byte(id.HostKeyPrivate)) + "' > /etc/ssh/ssh_host_ed25519_key",
		"printf 'clone1' > /proc/sys/kernel/hostname", `s/\bfvm-warm\b/clone1/g`,
		"printf '" + id.MachineID + "\\x0a' > /etc/machine-id",
		"mv instances/i-8899aabbccddeeff instances/i-0011223344556677",
		"printf 'i\\x2d0011223344556677\\x0a' > data/instance-id",
		"date -u -s @1764600000.123456789",
		"growpart", "resize2fs",
		"systemctl restart --no-block systemd-journald",
		"systemctl try-restart --no-block '[s]sh.service' '[s]shd.service'",
		`systemctl try-restart --no-block "getty@*.service" "serial-getty@*.service"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	if strings.Index(s, "systemctl restart --no-block") < strings.Index(s, "ssh_host_ed25519_key.pub") {
		t.Error("sshd restarts before the new key is in place")
	}
	if strings.Index(s, `"getty@*.service"`) < strings.Index(s, "/proc/sys/kernel/hostname") {
		t.Error("the consoles' prompts are printed again before the hostname is the clone's")
	}
}

func TestReidentifyRefusesBadValues(t *testing.T) {
	for name, edit := range map[string]func(*Identity){
		"hostname with a shell word": func(id *Identity) { id.Hostname = "x; rm -rf /" },
		"user":                       func(id *Identity) { id.User = "root$(id)" },
		"machine id":                 func(id *Identity) { id.MachineID = "xyz" },
		"instance id":                func(id *Identity) { id.InstanceID = "../../etc" },
		"key on two lines":           func(id *Identity) { id.AuthorizedKeys = []string{"ssh-ed25519 AAAA\nrm -rf /"} },
		"entropy":                    func(id *Identity) { id.Entropy = nil },
		"rsa host key":               func(id *Identity) { id.HostKeyPublic = "ssh-rsa AAAA" },
		"template hostname":          func(id *Identity) { id.OldHostname = "web1/../x" },
	} {
		id := testIdentity(t)
		edit(&id)
		if _, err := ReidentifyScript(id); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestUserDataMounts(t *testing.T) {
	c := testConfig(t)
	c.Mounts = []Mount{{Tag: "fvm0", GuestPath: "/src"}, {Tag: "fvm1", GuestPath: "/data", ReadOnly: true}}
	b, err := UserData(c)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"bootcmd:", "mount -t virtiofs -o defaults fvm0 /src", "mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,cache=mmap,ro fvm1 /data", "mkdir -p /data"} {
		if !strings.Contains(s, want) {
			t.Errorf("user-data lacks %q:\n%s", want, s)
		}
	}
	c.Mounts = nil
	if b, _ := UserData(c); strings.Contains(string(b), "bootcmd") {
		t.Error("bootcmd without mounts")
	}
}

// TestReidentifyFromNamedSnapshot: a clone of a VM's snapshot replaces that
// VM's hostname in /etc/hosts, not the warm template's.
func TestReidentifyFromNamedSnapshot(t *testing.T) {
	id := testIdentity(t)
	id.OldHostname = "web1"
	s, err := ReidentifyScript(id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, `s/\bweb1\b/clone1/g`) || strings.Contains(s, TemplateHostname) {
		t.Errorf("the hosts edit of a named snapshot's clone:\n%s", s)
	}
}

// TestUserDataNewMachineID: a clone booted cold gets its own machine id once.
func TestUserDataNewMachineID(t *testing.T) {
	c := testConfig(t)
	c.NewMachineID = true
	b, err := UserData(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "cloud-init-per") || !strings.Contains(string(b), "systemd-machine-id-setup") {
		t.Errorf("user-data of a clone:\n%s", b)
	}
	c.NewMachineID = false
	if b, _ := UserData(c); strings.Contains(string(b), "machine-id") {
		t.Error("a plain VM's seed replaces its machine id")
	}
}

// TestEscapeBytesRoundTrip: what the script writes is exactly the bytes given,
// quotes, percent signs, backslashes and NUL included.
func TestEscapeBytesRoundTrip(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	in := []byte("a'b\"c%s%%d\\x41\x00\xff\n-$(reboot)`id`")
	for i := 0; i < 256; i++ {
		in = append(in, byte(i))
	}
	out, err := exec.Command(bash, "-c", "printf '"+escapeBytes(in)+"'").Output()
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("bash wrote %q (%v), want %q", out, err, in)
	}
}

// A re-identified clone's machine id survives its next cold boot: the script
// marks the seed's once-per-instance replacement done for the clone's
// instance, under the name cloud-init-per gives it ('-' as '_').
func TestReidentifyMarksMachineIDDone(t *testing.T) {
	id := testIdentity(t)
	s, err := ReidentifyScript(id)
	if err != nil {
		t.Fatal(err)
	}
	if want := "instances/" + id.InstanceID + "/sem/" + machineIDSemaphore; !strings.Contains(s, want) {
		t.Errorf("the script does not mark %s:\n%s", want, s)
	}
	if got := "bootper." + strings.ReplaceAll(machineIDOnce, "-", "_") + ".instance"; got != machineIDSemaphore {
		t.Errorf("cloud-init-per names %q's semaphore %s, not %s", machineIDOnce, got, machineIDSemaphore)
	}
}
