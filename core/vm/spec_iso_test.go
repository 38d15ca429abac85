package vm

import (
	"strings"
	"testing"
)

func TestValidateSource(t *testing.T) {
	ok := func() Spec {
		return Spec{Name: "u1", ISO: "/isos/ubuntu.iso", Arch: AMD64, CPUs: 2, MemoryMiB: 2048, DiskBytes: 20 << 30, User: "fvm"}
	}
	s := ok()
	if err := s.Validate(); err != nil {
		t.Fatalf("ISO spec: %v", err)
	}
	s.AutoInstall = true
	if err := s.Validate(); err != nil {
		t.Fatalf("auto-install spec: %v", err)
	}
	for _, tc := range []struct {
		edit func(*Spec)
		want string
	}{
		{func(s *Spec) { s.Image = "debian" }, "give one"},
		{func(s *Spec) { s.ISO = "ubuntu.iso" }, "absolute"},
		{func(s *Spec) { s.ISO, s.Image, s.AutoInstall = "", "debian", true }, "--auto-install needs"},
		{func(s *Spec) { s.ISO = "" }, "--iso PATH"},
	} {
		s := ok()
		tc.edit(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: err = %v, want one line with %q", s, err, tc.want)
		}
	}
}
