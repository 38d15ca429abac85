package daemon

import (
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestParseListeners(t *testing.T) {
	ls, err := parseListeners("ports 0100007F:1F90 00000000:0016 00000000000000000000000000000000:1FBB 00000000000000000000000001000000:0BB8 0000000000000000FFFF00000F02000A:1F40")
	if err != nil {
		t.Fatal(err)
	}
	want := []listener{
		{netip.MustParseAddr("127.0.0.1"), 8080},
		{netip.MustParseAddr("0.0.0.0"), 22},
		{netip.MustParseAddr("::"), 8123},
		{netip.MustParseAddr("::1"), 3000},
		{netip.MustParseAddr("10.0.2.15"), 8000},
	}
	if !reflect.DeepEqual(ls, want) {
		t.Fatalf("got %v\nwant %v", ls, want)
	}
	for _, bad := range []string{"", "nope 1:2", "ports 0100007F", "ports ZZ:1F90", "ports 0100007F:XYZ", "ports 01007F:1F90"} {
		if _, err := parseListeners(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if ls, err := parseListeners("ports"); err != nil || len(ls) != 0 {
		t.Errorf("no listeners: %v %v", ls, err)
	}
}

func FuzzParseListeners(f *testing.F) {
	f.Add("ports 0100007F:1F90 00000000000000000000000000000000:1FBB")
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := parseListeners(s)
		if err == nil {
			for _, l := range ls {
				if !l.Addr.IsValid() {
					t.Fatalf("%q gave an invalid address", s)
				}
			}
		}
	})
}

func TestPortPolicyAndReconcile(t *testing.T) {
	pp := portPolicy{Static: map[uint16]bool{5432: true}}
	ls := []listener{
		{netip.MustParseAddr("0.0.0.0"), 22},     // sshd: never
		{netip.MustParseAddr("0.0.0.0"), 80},     // privileged: not by default
		{netip.MustParseAddr("::"), 8123},        // all addresses: the user network
		{netip.MustParseAddr("127.0.0.1"), 3000}, // loopback only: a tunnel
		{netip.MustParseAddr("::1"), 8123},       // also on loopback: the user network is enough
		{netip.MustParseAddr("0.0.0.0"), 5432},   // -p wins
	}
	want := pp.wanted(ls)
	if !reflect.DeepEqual(want, map[uint16]string{8123: viaHostfwd, 3000: viaSSH}) {
		t.Fatalf("wanted %v", want)
	}
	if w := (portPolicy{Privileged: true}).wanted(ls[:2]); w[80] != viaHostfwd || len(w) != 1 {
		t.Fatalf("privileged: %v", w)
	}
	have := map[uint16]autoForward{
		8123: {8123, 8123, viaHostfwd},
		9000: {9000, 9001, viaHostfwd}, // gone from the guest
		3000: {3000, 3000, viaHostfwd}, // now loopback only: another way
	}
	rm, add := reconcile(have, want)
	if !reflect.DeepEqual(rm, []autoForward{{3000, 3000, viaHostfwd}, {9000, 9001, viaHostfwd}}) ||
		!reflect.DeepEqual(add, []autoForward{{GuestPort: 3000, Via: viaSSH}}) {
		t.Fatalf("remove %v add %v", rm, add)
	}
	taken := map[uint16]bool{8123: true, 8124: true}
	if p := pickHostPort(8123, func(p uint16) bool { return !taken[p] }); p != 8125 {
		t.Fatalf("host port %d, want the next free one 8125", p)
	}
	if p := pickHostPort(65535, func(uint16) bool { return false }); p != 0 {
		t.Fatalf("nothing free: %d", p)
	}
}

// TestListenersScript runs the guest script's loop body under this machine's
// bash against its own /proc: the line it prints parses.
func TestListenersScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := strings.Replace(listenersScript, "while :; do", "for _once in 1; do", 1)
	out, err := exec.Command(bash, "-c", script).Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if _, err := parseListeners(strings.TrimSpace(string(out))); err != nil {
		t.Fatalf("the script printed %q: %v", out, err)
	}
}
