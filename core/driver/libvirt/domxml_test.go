package libvirt

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testDomainConfig() domainConfig {
	return domainConfig{
		Name: "web", UUID: "6c1d0f4e-8b1a-4c55-9a0e-2f8d6f0b9a11", Type: "qemu", Arch: "x86_64",
		CPUs: 2, MemoryMiB: 2048, Pool: "fvm", Disk: "fvm-web.qcow2", Seed: "fvm-web-seed.iso",
		SerialLog: "/var/lib/libvirt/fvm/fvm-web.serial.log",
		Meta:      Meta{Name: "web", Image: "debian-local", Digest: "sha256:0123abcd", User: "fvm", Backend: "fvm-libvirt/1 (fvm test)"},
	}
}

// TestDomainGolden: the XML of each shape, byte for byte (go test -update rewrites).
func TestDomainGolden(t *testing.T) {
	kvm := testDomainConfig()
	kvm.Type = "kvm"
	arm := testDomainConfig()
	arm.Arch = "aarch64"
	for name, c := range map[string]domainConfig{"tcg-x86_64": testDomainConfig(), "kvm-x86_64": kvm, "tcg-aarch64": arm} {
		t.Run(name, func(t *testing.T) {
			got, err := Domain(c)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "domain-"+name+".xml")
			if *update {
				os.WriteFile(path, []byte(got+"\n"), 0o644)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if got+"\n" != string(want) {
				t.Errorf("domain XML differs from %s (go test -run TestDomainGolden -update, then review the diff):\n%s", path, got)
			}
		})
	}
}

// TestDomainDevices checks the properties the backend relies on, whatever the
// golden files say.
func TestDomainDevices(t *testing.T) {
	x, err := Domain(testDomainConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<domain type="qemu">`, `<name>fvm-web</name>`,
		`<os firmware="efi">`, `<feature enabled="no" name="secure-boot">`,
		`<interface type="user">`, `<model type="virtio">`,
		`<source pool="fvm" volume="fvm-web.qcow2">`, `<target dev="vda" bus="virtio">`,
		`<log file="/var/lib/libvirt/fvm/fvm-web.serial.log" append="on">`,
		`<target type="virtio" name="org.fvm.ssh.0">`, `<target type="virtio" name="org.qemu.guest_agent.0">`,
		`<graphics type="vnc">`, `<listen type="socket">`, `<genid>`,
		`<vm xmlns="` + MetaNS + `">`,
	} {
		if !strings.Contains(x, want) {
			t.Errorf("domain XML lacks %s", want)
		}
	}
	for _, never := range []string{`type="network"`, `type="bridge"`, `portForward`, `listen type="address"`, `autoport`} {
		if strings.Contains(x, never) {
			t.Errorf("domain XML has %s: no host network may be used", never)
		}
	}
	c := testDomainConfig()
	c.Arch = "aarch64"
	if x, _ := Domain(c); strings.Contains(x, "genid") {
		t.Error("aarch64 has no VM generation ID device")
	}
	if _, err := Domain(domainConfig{Name: "x"}); err == nil {
		t.Error("an incomplete config gave XML")
	}
}

// TestMetaRoundTrip: the element fvm writes is what it reads back, also as
// libvirt returns it (re-serialized under a prefix of its own); a domain
// without it, or with another namespace's, is not fvm's.
func TestMetaRoundTrip(t *testing.T) {
	c := testDomainConfig()
	x, _ := Domain(c)
	m, ok := parseMeta(x)
	if !ok || m.Name != "web" || m.Digest != "sha256:0123abcd" || m.Image != "debian-local" || m.User != "fvm" {
		t.Fatalf("parseMeta = %+v, %v", m, ok)
	}
	asLibvirt := `<domain type='qemu'><name>fvm-web</name><metadata>
    <fvm:vm xmlns:fvm="` + MetaNS + `">
      <fvm:name>web</fvm:name><fvm:image>debian-local</fvm:image><fvm:digest>sha256:1</fvm:digest><fvm:user>fvm</fvm:user><fvm:backend>b</fvm:backend>
    </fvm:vm>
  </metadata></domain>`
	if m, ok := parseMeta(asLibvirt); !ok || m.Name != "web" || m.Digest != "sha256:1" {
		t.Fatalf("parseMeta(prefixed) = %+v, %v", m, ok)
	}
	for _, foreign := range []string{
		`<domain><name>fvm-db</name></domain>`,
		`<domain><name>fvm-db</name><metadata><vm xmlns="http://example.com/other"><name>db</name></vm></metadata></domain>`,
		`<domain><name>fvm-db</name><metadata><vm><name>db</name></vm></metadata></domain>`,
		`not xml`,
	} {
		if m, ok := parseMeta(foreign); ok {
			t.Errorf("parseMeta(%s) = %+v: a foreign domain taken for fvm's", foreign, m)
		}
	}
}
