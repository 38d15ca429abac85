package libvirt

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"net/url"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/config"
)

func TestPick(t *testing.T) {
	a := config.LibvirtHost{Name: "a", URI: "qemu:///system"}
	b := config.LibvirtHost{Name: "b", URI: "qemu+ssh://me@b/system"}
	c := config.LibvirtHost{Name: "c", URI: "qemu+ssh://me@c/system"}
	gib := uint64(1 << 30)
	got, err := pick([]candidate{{Host: a, Free: 2 * gib}, {Host: b, Free: 6 * gib}, {Host: c, Free: 4 * gib}}, 1024)
	if err != nil || got != b {
		t.Fatalf("pick = %v, %v; want b (most free)", got, err)
	}
	got, err = pick([]candidate{{Host: a, Free: 2 * gib}, {Host: b, Err: errors.New("unreachable")}}, 1024)
	if err != nil || got != a {
		t.Fatalf("an unreachable host is passed over: %v, %v", got, err)
	}
	_, err = pick([]candidate{{Host: a, Free: gib / 2}, {Host: b, Free: gib / 4}}, 1024)
	if err == nil || !strings.Contains(err.Error(), "no libvirt host has 1.0 GiB of memory free") || !strings.Contains(err.Error(), "a has 512.0 MiB free") {
		t.Fatalf("none fits: %v", err)
	}
	_, err = pick([]candidate{{Host: a, Err: errors.New("no answer")}}, 1)
	if err == nil || !strings.Contains(err.Error(), "a: no answer") {
		t.Fatalf("none answers: %v", err)
	}
	got, _ = pick([]candidate{{Host: a, Free: gib - 3<<20}, {Host: b, Free: gib}}, 1) // a tie within the noise of two reads
	if got != a {
		t.Fatalf("a tie goes to the first: %v", got)
	}
}

func TestDomainType(t *testing.T) {
	for _, tc := range []struct {
		types       []string
		accel, want string
		notice, err bool
	}{
		{[]string{"kvm", "qemu"}, "auto", "kvm", false, false},
		{[]string{"qemu"}, "", "qemu", true, false},
		{[]string{"kvm", "qemu"}, "tcg", "qemu", false, false},
		{[]string{"qemu"}, "kvm", "", false, true},
		{[]string{"qemu"}, "hvf", "", false, true},
	} {
		got, notice, err := domainType(tc.types, tc.accel, "")
		if got != tc.want || (notice != "") != tc.notice || (err != nil) != tc.err {
			t.Errorf("domainType(%v, %q) = %q, %q, %v", tc.types, tc.accel, got, notice, err)
		}
	}
}

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		uri           string
		local, remote bool
		err           string
	}{
		{uri: "qemu:///system", local: true},
		{uri: "qemu:///session", local: true},
		{uri: "qemu+unix:///system?socket=/tmp/x.sock", local: true},
		{uri: "qemu+ssh://me@server:2222/system", remote: true},
		{uri: "qemu+tcp://server/system"},
		{uri: "xen:///system", err: "QEMU domains only"},
		{uri: "qemu:///embed?root=/x", err: "/system or /session"},
		{uri: "qemu+unix://host/system", err: "names no host"},
		{uri: "qemu+foo:///system", err: `transport "foo"`},
		{uri: "not a uri", err: "is not a URI"},
		{uri: "qemu+ssh:///system", err: "needs a host"},
	} {
		tg, err := parseURI(tc.uri)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseURI(%q) = %v, want %q", tc.uri, err, tc.err)
			}
			continue
		}
		if err != nil || tg.local != tc.local || (tg.ssh != nil) != tc.remote {
			t.Errorf("parseURI(%q) = %+v, %v", tc.uri, tg, err)
		}
	}
	tg, _ := parseURI("qemu+unix:///system?socket=/tmp/x.sock")
	if tg.dialer.(unixDialer) != "/tmp/x.sock" || tg.remote != "qemu:///system" {
		t.Errorf("socket %v, remote %q", tg.dialer, tg.remote)
	}
}

// TestSSHDialer: qemu+ssh runs the user's ssh with virt-ssh-helper for the
// URI's daemon, or nc -U with ?proxy=netcat.
func TestSSHDialer(t *testing.T) {
	u, _ := url.Parse("qemu+ssh://me@server:2222/system?keyfile=/k")
	d, err := newSSHDialer(u)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(d.args, " ")
	if args != "-T -e none -o BatchMode=yes -p 2222 -i /k -- me@server" || d.remote != "virt-ssh-helper 'qemu:///system'" {
		t.Fatalf("ssh %s %s", args, d.remote)
	}
	u, _ = url.Parse("qemu+ssh://server/system?proxy=netcat&command=/usr/bin/myssh")
	d, _ = newSSHDialer(u)
	if d.command != "/usr/bin/myssh" || d.remote != "nc -U '/run/libvirt/libvirt-sock'" {
		t.Fatalf("netcat: %s %s", d.command, d.remote)
	}
	// The ssh child's stderr is the error of a connection that ends at once.
	u, _ = url.Parse("qemu+ssh://server/system?command=sh")
	d, _ = newSSHDialer(u)
	d.args = []string{"-c", "echo 'ssh: connect to host server port 22: Connection refused' >&2; exit 255"}
	d.remote = ""
	c, err := d.Dial()
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Read(make([]byte, 1))
	c.Close()
	if err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("read from a failed ssh: %v", err)
	}
}

func TestDecodePPM(t *testing.T) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "P6\n# qemu\n2 1\n255\n")
	b.Write([]byte{255, 0, 0, 0, 0, 255})
	img, err := decodePPM(&b)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 2 || img.At(0, 0) != (color.RGBA{255, 0, 0, 255}) || img.At(1, 0) != (color.RGBA{0, 0, 255, 255}) {
		t.Fatalf("decoded %v %v %v", img.Bounds(), img.At(0, 0), img.At(1, 0))
	}
	if _, err := decodePPM(strings.NewReader("P3\n1 1\n255\n0 0 0")); err == nil {
		t.Error("ASCII PPM accepted")
	}
	if _, err := decodePPM(strings.NewReader("P6\n2 2\n255\nab")); err == nil {
		t.Error("short pixels accepted")
	}
}

func TestVNCSocket(t *testing.T) {
	x := `<domain><devices><graphics type='vnc' socket='/var/lib/libvirt/qemu/domain-1-fvm-a/vnc.sock'><listen type='socket' socket='/var/lib/libvirt/qemu/domain-1-fvm-a/vnc.sock'/></graphics></devices></domain>`
	if s, err := vncSocket(x); err != nil || s != "/var/lib/libvirt/qemu/domain-1-fvm-a/vnc.sock" {
		t.Fatalf("vncSocket = %q, %v", s, err)
	}
	if _, err := vncSocket(`<domain><devices/></domain>`); err == nil {
		t.Error("no VNC: no error")
	}
}

func TestUUID(t *testing.T) {
	u := newUUID()
	p, err := parseUUID(u)
	if err != nil || uuidText(p) != u {
		t.Fatalf("%s → %v → %s", u, err, uuidText(p))
	}
}

// A socket path that ssh's -L cannot say is refused before ssh runs.
func TestForwardRefusesUnsayablePaths(t *testing.T) {
	d := &sshDialer{command: "/nonexistent/ssh"}
	for _, p := range []string{"/run/a:b/vnc.sock", "/run/a b/vnc.sock"} {
		if _, err := d.forward(p); err == nil || !strings.Contains(err.Error(), "cannot name a path") {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestDomainTypeLocalKVM: a daemon on this machine offers KVM wherever
// /dev/kvm exists; where fvm's own probe says it cannot boot a standard guest
// (kvm_pvm), auto picks TCG and says why; a forced --accel kvm is kept.
func TestDomainTypeLocalKVM(t *testing.T) {
	const why = "/dev/kvm is backed by kvm_pvm"
	if typ, notice, err := domainType([]string{"kvm", "qemu"}, "auto", why); typ != "qemu" || !strings.Contains(notice, why) || err != nil {
		t.Errorf("auto with unusable local KVM: %q %q %v", typ, notice, err)
	}
	if typ, _, err := domainType([]string{"kvm", "qemu"}, "kvm", why); typ != "kvm" || err != nil {
		t.Errorf("--accel kvm with unusable local KVM: %q %v, want kvm as asked", typ, err)
	}
	for uri, local := range map[string]bool{
		"qemu:///system":                            true,
		"qemu:///session":                           true,
		"qemu+unix:///system?socket=/tmp/x/sock":    true,
		"qemu+ssh://root@server/system":             false,
		"qemu+ssh://root@127.0.0.1:2222/system":     true,
		"qemu+ssh://[::1]/system":                   true,
		"qemu+ssh://localhost/system":               true,
		"qemu+ssh://server:2222/system?keyfile=/k":  false,
		"qemu+tcp://10.0.0.1/system":                false,
		"qemu+libssh2://user@host/system?sshauth=x": false,
		"::bad": false,
	} {
		if got := localURI(uri); got != local {
			t.Errorf("localURI(%q) = %v, want %v", uri, got, local)
		}
	}
}
