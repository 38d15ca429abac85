package vz

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSearch is a helperSearch over a set of executables, of which the
// entitled ones were signed with the virtualization entitlement.
func fakeSearch(files, entitled []string) helperSearch {
	has := map[string]bool{}
	for _, f := range files {
		has[f] = true
	}
	ok := map[string]bool{}
	for _, f := range entitled {
		ok[f] = true
	}
	return helperSearch{
		exe:      "/Applications/fvm.app/Contents/MacOS/fvm",
		home:     "/Users/me",
		lookPath: func(string) (string, error) { return "", exec.ErrNotFound },
		isExec:   func(p string) bool { return has[p] },
		entitled: func(p string) error {
			if ok[p] {
				return nil
			}
			return errors.New("not signed with the " + VirtualizationEntitlement + " entitlement")
		},
	}
}

func TestFindHelperInTheBundle(t *testing.T) {
	in := HelperInApp("/Applications/fvm.app")
	if in != "/Applications/fvm.app/Contents/Helpers/fvm-vz.app/Contents/MacOS/fvm-vz" {
		t.Fatalf("HelperInApp = %s", in)
	}
	s := fakeSearch([]string{in}, []string{in})
	if p, err := s.find(); err != nil || p != in {
		t.Fatalf("the CLI in fvm.app: %q %v, want its bundle's helper", p, err)
	}
	// The CLI linked into PATH (make install): symlinks are resolved first, so
	// exe is the bundle's; a CLI elsewhere finds ~/Applications' helper.
	s.exe = "/usr/local/bin/fvm"
	home := HelperInApp("/Users/me/Applications/fvm.app")
	s = fakeSearch([]string{home, in}, []string{home, in})
	s.exe = "/usr/local/bin/fvm"
	if p, err := s.find(); err != nil || p != home {
		t.Fatalf("a CLI outside the bundle: %q %v, want %s", p, err, home)
	}
}

// TestFindHelperSkipsUnentitled: an unsigned fvm-vz beside bin/fvm (what
// build-app.sh used to leave) is passed over for the signed one in the bundle,
// and when it is the only one the error says why it was not used.
func TestFindHelperSkipsUnentitled(t *testing.T) {
	beside := "/src/fvm/bin/fvm-vz"
	signed := HelperInApp("/Users/me/Applications/fvm.app")
	s := fakeSearch([]string{beside, signed}, []string{signed})
	s.exe = "/src/fvm/bin/fvm"
	if p, err := s.find(); err != nil || p != signed {
		t.Fatalf("got %q %v, want the signed %s", p, err, signed)
	}
	s = fakeSearch([]string{beside}, nil)
	s.exe = "/src/fvm/bin/fvm"
	_, err := s.find()
	if err == nil || !strings.Contains(err.Error(), beside) || !strings.Contains(err.Error(), VirtualizationEntitlement) || !strings.Contains(err.Error(), "make install") {
		t.Fatalf("only an unsigned helper: %v", err)
	}
	// Named explicitly: refused with the reason, not passed over.
	s.env = beside
	if _, err := s.find(); err == nil || !strings.Contains(err.Error(), HelperEnv) || !strings.Contains(err.Error(), VirtualizationEntitlement) {
		t.Fatalf("unsigned $%s: %v", HelperEnv, err)
	}
	s = fakeSearch(nil, nil)
	if _, err := s.find(); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("no helper anywhere: %v", err)
	}
}

func TestParseEntitlements(t *testing.T) {
	xml := `Executable=/Applications/fvm.app/Contents/Helpers/fvm-vz.app/Contents/MacOS/fvm-vz
<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "https://www.apple.com/DTDs/PropertyList-1.0.dtd"><plist version="1.0"><dict><key>com.apple.security.network.server</key><true/><key>com.apple.security.virtualization</key><true/></dict></plist>`
	if err := parseEntitlements([]byte(xml)); err != nil {
		t.Errorf("signed: %v", err)
	}
	if err := parseEntitlements([]byte(strings.Replace(xml, "virtualization</key><true/>", "virtualization</key><false/>", 1))); err == nil {
		t.Error("false accepted")
	}
	if err := parseEntitlements([]byte("Executable=/x\n")); err == nil || !strings.Contains(err.Error(), VirtualizationEntitlement) {
		t.Errorf("no entitlements: %v", err)
	}
	// The repository's entitlements.plist, which build-app.sh signs the helper with, has it.
	if err := parseEntitlements(mustRead(t, filepath.Join("..", "..", "..", "entitlements.plist"))); err != nil {
		t.Errorf("entitlements.plist: %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
