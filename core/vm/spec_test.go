package vm

import (
	"net/netip"
	"strings"
	"testing"
)

func validSpec() Spec {
	return Spec{Name: "web1", Image: "debian-local", Arch: AMD64, CPUs: 2, MemoryMiB: 2048, DiskBytes: 20 << 30, User: "fvm"}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "web1", "my-vm-2", strings.Repeat("a", MaxNameLen)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v, want ok", ok, err)
		}
	}
	for _, bad := range []string{"", "Web", "-a", "a-", "a_b", "a.b", "a b", strings.Repeat("a", MaxNameLen+1), "../x"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) = nil, want error", bad)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	s := validSpec()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*Spec){
		"cpus":   func(s *Spec) { s.CPUs = 0 },
		"memory": func(s *Spec) { s.MemoryMiB = 64 },
		"disk":   func(s *Spec) { s.DiskBytes = 1 << 20 },
		"user":   func(s *Spec) { s.User = "root" },
		"accel":  func(s *Spec) { s.Accel = "xen" },
		"arch":   func(s *Spec) { s.Arch = "mips" },
		"image":  func(s *Spec) { s.Image = "" },
		"ports": func(s *Spec) {
			p := PortForward{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 80, GuestPort: 80}
			s.Ports = []PortForward{p, p}
		},
	}
	for what, mutate := range cases {
		s := validSpec()
		mutate(&s)
		err := s.Validate()
		if err == nil {
			t.Errorf("%s: Validate() = nil, want error", what)
			continue
		}
		if !strings.Contains(err.Error(), what) && what != "ports" {
			t.Errorf("%s: error %q does not name the field", what, err)
		}
	}
}

func TestParsePortForward(t *testing.T) {
	for in, want := range map[string]string{
		"8080:80":             "127.0.0.1:8080->80/tcp",
		"0.0.0.0:2222:22":     "0.0.0.0:2222->22/tcp",
		"[::1]:8443:443":      "[::1]:8443->443/tcp",
		"192.168.1.5:5432:54": "192.168.1.5:5432->54/tcp",
	} {
		p, err := ParsePortForward(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if p.String() != want {
			t.Errorf("%q: got %s, want %s", in, p, want)
		}
	}
	for _, bad := range []string{"80", "a:80", "80:0", "70000:80", "x.y:1:2", ":80", "80:"} {
		if _, err := ParsePortForward(bad); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"2G": 2 << 30, "512M": 512 << 20, "20GiB": 20 << 30, "1.5G": 3 << 29, "1024B": 1024, "1t": 1 << 40, "4096MiB": 4 << 30} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "abc", "2X", "1e3G", "0x10M", "InfG", "NaNG"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q): want error", bad)
		}
	}
	// A bare number is GiB, as `--memory 4` and `--disk 20` read in the tools fvm replaces.
	for in, want := range map[string]int64{"4": 4 << 30, "20": 20 << 30, " 0.5 ": 1 << 29, "1023": 1023 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d (GiB)", in, got, err, want)
		}
	}
	// ...but 4096 is a MiB figure without its unit, not 4 TiB of memory.
	if _, err := ParseSize("4096"); err == nil || !strings.Contains(err.Error(), "4096M") || !strings.Contains(err.Error(), "GiB") {
		t.Errorf("ParseSize(\"4096\"): %v, want an error suggesting 4096M", err)
	}
	if got := FormatSize(2 << 30); got != "2G" {
		t.Errorf("FormatSize = %s", got)
	}
}

func TestGenerateName(t *testing.T) {
	taken := map[string]bool{}
	for i := 0; i < 50; i++ {
		n := GenerateName(func(s string) bool { return taken[s] })
		if err := ValidateName(n); err != nil {
			t.Fatal(err)
		}
		if taken[n] {
			t.Fatalf("duplicate %s", n)
		}
		taken[n] = true
	}
}

func FuzzParsePortForward(f *testing.F) {
	for _, s := range []string{"8080:80", "[::1]:1:2", "1.2.3.4:5:6", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePortForward(s)
		if err == nil && (p.HostPort == 0 || p.GuestPort == 0 || !p.HostIP.IsValid()) {
			t.Fatalf("%q parsed to invalid %+v", s, p)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"2G", "1.5T", "100", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil && n <= 0 {
			t.Fatalf("%q -> %d", s, n)
		}
	})
}

func TestRosettaNeedsArm64(t *testing.T) {
	s := Spec{Name: "r", Image: "debian", Arch: AMD64, CPUs: 2, MemoryMiB: 2048, DiskBytes: 20 << 30, User: "fvm", Rosetta: true}
	for _, err := range []error{s.ValidateSettings(), s.Validate()} {
		if err == nil || !strings.Contains(err.Error(), "--rosetta runs x86-64 programs in arm64 guests, and this VM is amd64") {
			t.Errorf("--rosetta on amd64: %v", err)
		}
	}
	s.Arch = ""
	if err := s.ValidateSettings(); err != nil {
		t.Errorf("no arch yet (the image decides): %v", err)
	}
	s.Arch = ARM64
	if err := s.Validate(); err != nil {
		t.Errorf("--rosetta on arm64: %v", err)
	}
}
