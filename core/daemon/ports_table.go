package daemon

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Automatic port forwards, the pure part: which guest listeners a line of the
// guest's watcher names (listenersScript), and which forwards follow from them.

// listenersScript runs in the guest for as long as the host holds its SSH
// connection: twice a second it reads /proc/net/tcp{,6} with shell builtins
// only (no process per poll) and prints the listening sockets whenever
// they change, as one line of HEXADDR:HEXPORT words.
const listenersScript = `f=$(mktemp -u); mkfifo "$f"; exec 9<>"$f"; rm -f "$f"
prev=-
while :; do
  cur=
  for t in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$t" ] || continue
    while read -r _ l _ st _; do
      [ "$st" = 0A ] && cur="$cur $l"
    done < "$t"
  done
  if [ "$cur" != "$prev" ]; then echo "ports$cur"; prev=$cur; fi
  read -t 0.5 -u 9 || :
done`

// listener is a listening TCP socket in the guest.
type listener struct {
	Addr netip.Addr
	Port uint16
}

// parseListeners reads one line of listenersScript's output.
func parseListeners(line string) ([]listener, error) {
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "ports" {
		return nil, fmt.Errorf("not a listener line: %q", line)
	}
	var out []listener
	for _, w := range f[1:] {
		l, err := parseProcAddr(w)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// parseProcAddr reads /proc/net/tcp's "0100007F:1F90" (IPv4, little-endian
// words) or tcp6's 32-digit form.
func parseProcAddr(s string) (listener, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return listener{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return listener{}, fmt.Errorf("bad port in %q", s)
	}
	b, err := hex.DecodeString(a)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return listener{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(b); i += 4 { // each 32-bit word is in host (little-endian) order
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	addr, _ := netip.AddrFromSlice(b)
	return listener{Addr: addr.Unmap(), Port: uint16(port)}, nil
}

// Ways a guest port reaches the host.
const (
	viaHostfwd = "hostfwd" // the hypervisor's user network (guest listens on all addresses)
	viaSSH     = "ssh"     // a tunnel over the held SSH connection (guest listens on loopback only)
)

// autoForward is one automatic forward.
type autoForward struct {
	GuestPort uint16
	HostPort  uint16
	Via       string
}

// portPolicy says which listeners are forwarded.
type portPolicy struct {
	Privileged bool            // ports below 1024 too
	Static     map[uint16]bool // guest ports of -p forwards: those stay static and win
}

// wanted turns listeners into the guest ports to forward and how.
func (pp portPolicy) wanted(ls []listener) map[uint16]string {
	out := map[uint16]string{}
	for _, l := range ls {
		if l.Port == 22 || (l.Port < 1024 && !pp.Privileged) || pp.Static[l.Port] {
			continue
		}
		via := viaHostfwd
		if l.Addr.IsLoopback() {
			via = viaSSH
		}
		if out[l.Port] == viaHostfwd {
			continue // some socket on the port takes the guest's network address: that way is enough
		}
		out[l.Port] = via
	}
	return out
}

// reconcile compares the forwards in place with what the guest listens on now:
// what to remove (gone, or to be reached another way) and what to add.
func reconcile(have map[uint16]autoForward, want map[uint16]string) (remove []autoForward, add []autoForward) {
	for gp, f := range have {
		if via, ok := want[gp]; !ok || via != f.Via {
			remove = append(remove, f)
		}
	}
	for gp, via := range want {
		if f, ok := have[gp]; !ok || f.Via != via {
			add = append(add, autoForward{GuestPort: gp, Via: via})
		}
	}
	sort.Slice(remove, func(i, j int) bool { return remove[i].GuestPort < remove[j].GuestPort })
	sort.Slice(add, func(i, j int) bool { return add[i].GuestPort < add[j].GuestPort })
	return remove, add
}

// pickHostPort returns the guest's port when free is true for it, else the
// next free one above it (within 100), else 0.
func pickHostPort(guest uint16, free func(uint16) bool) uint16 {
	for p := int(guest); p < int(guest)+100 && p <= 65535; p++ {
		if free(uint16(p)) {
			return uint16(p)
		}
	}
	return 0
}

// scanLines splits the watcher's output into lines (bounded).
func scanLines(s *bufio.Scanner) { s.Buffer(make([]byte, 64<<10), 1<<20) }
