package cloudinit

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// A warm clone starts as a copy of a template VM that booted once under a
// generic identity. Before anyone can use it, the host runs the script below
// as root, through the guest agent or else over the template's SSH key; it
// makes the clone its own machine and
// leaves cloud-init believing it already ran for the clone's own seed, so a
// later reboot keeps that identity instead of provisioning again.

// TemplateHostname is the generic hostname a template boots with.
const TemplateHostname = "fvm-warm"

// Identity is what a clone gets of its own.
type Identity struct {
	Hostname       string   // the VM name
	OldHostname    string   // the template's ("" for TemplateHostname): a named snapshot's VM
	User           string   // the login user (the template's: snapshots are made per user)
	AuthorizedKeys []string // the clone's authorized_keys for User
	HostKeyPrivate string   // the clone's ed25519 host key (OpenSSH PEM), pinned by fvm
	HostKeyPublic  string
	MachineID      string    // 32 lowercase hex digits
	InstanceID     string    // the clone seed's instance id
	OldInstanceID  string    // the template's
	Entropy        []byte    // host randomness for the guest's pool
	Now            time.Time // for the clock, when SetClock
	SetClock       bool      // the backend could not set the clock (no guest agent): set it here
	GrowDisk       bool      // the disk is larger than the template's: grow the root filesystem
	// Spare: the clone waits, frozen, to be handed over under a VM's name
	// (RenameScript): its calendar timers stay paused until then, when its
	// clock is set.
	Spare bool
}

var (
	hexID      = regexp.MustCompile(`^[0-9a-f]{32}$`)
	instID     = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	hostnameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	login      = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

func (id Identity) validate() error {
	var errs []error
	check := func(ok bool, what string) {
		if !ok {
			errs = append(errs, fmt.Errorf("re-identify: %s", what))
		}
	}
	check(hostnameRe.MatchString(id.Hostname), "bad hostname")
	check(id.OldHostname == "" || hostnameRe.MatchString(id.OldHostname), "bad template hostname")
	check(login.MatchString(id.User), "bad user")
	check(hexID.MatchString(id.MachineID), "bad machine id")
	check(instID.MatchString(id.InstanceID) && instID.MatchString(id.OldInstanceID), "bad instance id")
	check(strings.Contains(id.HostKeyPrivate, "PRIVATE KEY"), "no host key")
	check(strings.HasPrefix(strings.TrimSpace(id.HostKeyPublic), "ssh-ed25519 "), "host public key is not ed25519")
	check(len(id.AuthorizedKeys) > 0, "no authorized key")
	for _, k := range id.AuthorizedKeys {
		check(!strings.ContainsAny(strings.TrimSpace(k), "\n\r"), "an authorized key spans lines")
	}
	check(len(id.Entropy) >= 32, "too little entropy")
	return errors.Join(errs...)
}

// NewMachineID returns 32 hex digits from random bytes (a systemd machine id).
func NewMachineID(random []byte) string { return hex.EncodeToString(random[:16]) }

// Reidentify is the script, run as root in the clone, that gives it an
// Identity, in two parts. First makes the clone answer SSH as itself: clock,
// host key, hostname, machine id, the user's keys, entropy (and restarts a
// listening sshd). Rest finishes what must hold before the clone is used but
// may run while the host's first connection is made: /etc/hosts, cloud-init's
// record of the instance, the disk's size, the journal and the consoles. Rest's last line reads back "reidentified HOSTNAME MACHINE-ID" as
// the guest sees them (ReadBack).
type Reidentify struct{ First, Rest string }

// Script is both parts as one script (for a clone reached over SSH).
func (r Reidentify) Script() string { return r.First + r.Rest }

// ReidentifyScript returns the whole script that gives a clone id.
func ReidentifyScript(id Identity) (string, error) {
	r, err := ReidentifyScripts(id)
	return r.Script(), err
}

// ReidentifyScripts returns the script's two parts. Values enter them only
// as base64 or as validated tokens: nothing is interpreted by the shell.
func ReidentifyScripts(id Identity) (Reidentify, error) {
	return reidentifyScripts(id, "", true)
}

// reidentifyScripts writes under root (tests run the script on a directory
// tree) and, with services, asks systemd for restarts.
func reidentifyScripts(id Identity, root string, services bool) (Reidentify, error) {
	if err := id.validate(); err != nil {
		return Reidentify{}, err
	}
	keys := strings.Join(trimAll(id.AuthorizedKeys), "\n") + "\n"
	priv := id.HostKeyPrivate
	if !strings.HasSuffix(priv, "\n") {
		priv += "\n"
	}
	// Under TCG every program started costs 40-100 ms: files are written with
	// bash's own printf (contents as \xHH escapes in a quoted format, nothing
	// for the shell to interpret), tests are bash's own, and a program runs
	// only where there is something for it to do.
	var first, rest strings.Builder
	s := &first
	w := func(format string, args ...any) { fmt.Fprintf(s, format+"\n", args...) }
	put := func(path, content string) { w("printf '%s' > %s", escapeBytes([]byte(content)), path) }
	header := func(what string) {
		w("#!/bin/bash")
		w("# fvm: make this warm clone its own machine (%s)", what)
		w("set -eu")
		w("export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
		w("R='%s'", root) // a test's directory, or ""
	}
	header("first part")
	w("umask 077")
	if id.SetClock {
		w("# Clock first: the value is as fresh as it will be.")
		w("date -u -s @%d.%09d > /dev/null", id.Now.Unix(), id.Now.Nanosecond())
	}
	w("# The clone's own SSH host key, the only one. A listening sshd is told right after;")
	w("# a per-connection one reads it at the next connection.")
	w(`for f in "$R"/etc/ssh/ssh_host_*; do`)
	w(`  case $f in "$R"/etc/ssh/ssh_host_ed25519_key|"$R"/etc/ssh/ssh_host_ed25519_key.pub) ;; *) [ ! -e "$f" ] || rm -f -- "$f" ;; esac`)
	w("done")
	put(`"$R"/etc/ssh/ssh_host_ed25519_key`, priv)
	w("umask 022")
	put(`"$R"/etc/ssh/ssh_host_ed25519_key.pub`, strings.TrimSpace(id.HostKeyPublic)+"\n")
	if services {
		w("# A listening sshd re-executes itself on SIGHUP (same pid, its socket bound again)")
		w("# and loads the new key while the rest runs; the host polls for that key. One that")
		w("# systemd's ssh.socket started (its socket passed in, which a re-execution may not")
		w("# keep), or none to signal: a listening ssh.service restarts instead; globs match")
		w("# loaded units only: [s]sh is ssh.service itself, never an sshd@ instance.")
		w(`pid=; comm=; [ -e /etc/systemd/system/sockets.target.wants/ssh.socket ] || [ ! -f /run/sshd.pid ] || read -r pid < /run/sshd.pid || true`)
		w(`case $pid in ''|*[!0-9]*) pid= ;; *) read -r comm 2> /dev/null < "/proc/$pid/comm" || true ;; esac`)
		w(`if [ "$comm" = sshd ] && kill -HUP "$pid" 2> /dev/null; then :`)
		w(`elif [ ! -e /etc/systemd/system/sockets.target.wants/sshd.socket ]; then systemctl try-restart --no-block '[s]sh.service' '[s]shd.service' || true; fi`)
	}
	hostname(put, id.Hostname)
	w("# Machine id (journald and D-Bus follow it). The one it replaces is kept for the rest,")
	w("# which moves the journal to the new one.")
	w(`old=; [ ! -f "$R"/etc/machine-id ] || read -r old < "$R"/etc/machine-id || true`)
	w(`[ ! -d "$R"/run ] || printf '%%s' "$old" > "$R"/%s`, oldMachineIDFile)
	put(`"$R"/etc/machine-id`, id.MachineID+"\n")
	w(`if [ -f "$R"/var/lib/dbus/machine-id ] && [ ! -L "$R"/var/lib/dbus/machine-id ]; then`)
	put(`  "$R"/var/lib/dbus/machine-id`, id.MachineID+"\n")
	w("fi")
	w("# The user's keys (a file that exists keeps its owner and mode).")
	w("umask 077")
	w(`home=~%s; home=$R$home`, id.User)
	w(`[ -d "$home/.ssh" ] || { mkdir -p "$home/.ssh"; chown %s: "$home/.ssh"; }`, id.User)
	w(`new=; [ -e "$home/.ssh/authorized_keys" ] || new=1`)
	put(`"$home/.ssh/authorized_keys"`, keys)
	w(`[ -z "$new" ] || chown %s: "$home/.ssh/authorized_keys"`, id.User)
	w("# Host randomness into the pool (the kernel also reseeded on the new VM generation id).")
	put(`"$R"/dev/urandom`, string(id.Entropy))
	w("echo keyed")

	s = &rest
	header("the rest")
	w("umask 022")
	old := id.OldHostname
	if old == "" {
		old = TemplateHostname
	}
	hosts(w, old, id.Hostname)
	w("# cloud-init: the clone's seed is the instance it already ran for (a reboot keeps this identity).")
	w("# A template that fvm-init provisioned has no cloud-init instance to carry on.")
	w(`if [ -d "$R"/var/lib/cloud/instances ]; then`)
	w(`cd "$R"/var/lib/cloud`)
	w("if [ -d instances/%s ] && [ ! -e instances/%s ]; then mv instances/%s instances/%s; fi", id.OldInstanceID, id.InstanceID, id.OldInstanceID, id.InstanceID)
	w("[ -d instances/%s ] && [ -d data ] || mkdir -p instances/%s data", id.InstanceID, id.InstanceID)
	w("ln -sfn /var/lib/cloud/instances/%s instance", id.InstanceID)
	put("data/instance-id", id.InstanceID+"\n")
	put("data/previous-instance-id", id.InstanceID+"\n")
	w("[ ! -e instances/%s/obj.pkl ] || rm -f instances/%s/obj.pkl  # read the clone's seed at the next boot", id.InstanceID, id.InstanceID)
	w("# The machine id above is this instance's: the seed's once-per-instance replacement")
	w("# (for clones that boot cold) must not run at the next cold boot.")
	w("[ -d instances/%s/sem ] || mkdir -p instances/%s/sem", id.InstanceID, id.InstanceID)
	put(fmt.Sprintf("instances/%s/sem/%s", id.InstanceID, machineIDSemaphore), fmt.Sprintf("0\t%d\n", id.Now.Unix()))
	w("cd /")
	w("fi")
	w("# fvm-init (fvm's lean image booted directly): the same, in its own state.")
	w(`if [ -d "$R"/var/lib/fvm ]; then`)
	put(`  "$R"/var/lib/fvm/instance-id`, id.InstanceID+"\n")
	w("fi")
	if id.GrowDisk {
		w("# Grow the root filesystem to the clone's disk.")
		w(`root=$(findmnt -no SOURCE /); part=${root##*/}`)
		w(`if [ -e "/sys/class/block/$part/partition" ]; then`)
		w(`  disk=/dev/$(basename "$(readlink -f "/sys/class/block/$part/..")")`)
		w(`  growpart "$disk" "$(cat "/sys/class/block/$part/partition")" > /dev/null 2>&1 || true`)
		w("fi")
		w(`resize2fs "$root" > /dev/null 2>&1 || true`)
	}
	journal(w, id.MachineID, services)
	if services {
		if !id.Spare {
			resumeTimers(w)
		}
		consoles(w)
	}
	w("# What the guest now says it is, for the host to check.")
	w("%s", readBack(`"$R"`))
	return Reidentify{First: first.String(), Rest: rest.String()}, nil
}

// hostname writes the lines that name the guest.
func hostname(put func(path, content string), name string) {
	put(`"$R"/etc/hostname`, name+"\n")
	put(`"$R"/proc/sys/kernel/hostname`, name)
}

// hosts writes the lines that make /etc/hosts name the guest where it named old.
func hosts(w func(string, ...any), old, name string) {
	w("# /etc/hosts names the clone where it named the template.")
	w(`hosts=; read -r -d '' hosts < "$R"/etc/hosts || true`)
	w(`case $hosts in *%s*) sed -i -e 's/\b%s\b/%s/g' "$R"/etc/hosts ;; esac`, old, old, name)
}

// consoles writes the lines that print the consoles' login prompts again
// under the guest's new name.
func consoles(w func(string, ...any)) {
	w("# The consoles' login prompts, printed under the old name: the screen is cleared and")
	w("# each agetty prints its prompt again (restarting the gettys instead cost about a second of")
	w("# CPU under emulation; it is what happens where agetty cannot reload).")
	w(`[ ! -e /dev/tty1 ] || printf "\033[H\033[2J\033[3J" > /dev/tty1 || true`)
	w(`agetty --reload 2> /dev/null || systemctl try-restart --no-block "getty@*.service" "serial-getty@*.service" || true`)
}

// RenameScript is what hands a spare clone (Identity.Spare) over as the VM
// name: its hostname and /etc/hosts, its calendar timers started (its clock
// was set just before, by the host), its consoles' prompts printed again, and
// ReadBack's line. Everything else of its own it got when it was made.
func RenameScript(name, old string) (string, error) {
	return renameScript(name, old, "", true)
}

func renameScript(name, old, root string, services bool) (string, error) {
	if !hostnameRe.MatchString(name) || !hostnameRe.MatchString(old) {
		return "", fmt.Errorf("rename a spare clone: bad hostname %q or %q", name, old)
	}
	var s strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&s, format+"\n", args...) }
	put := func(path, content string) { w("printf '%s' > %s", escapeBytes([]byte(content)), path) }
	w("#!/bin/bash")
	w("# fvm: hand a spare clone over under its VM's name")
	w("set -eu")
	w("export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	w("R='%s'", root)
	w("umask 022")
	hostname(put, name)
	hosts(w, old, name)
	if services {
		resumeTimers(w)
		consoles(w)
	}
	w("%s", readBack(`"$R"`))
	return s.String(), nil
}

// oldMachineIDFile is where the first part leaves the machine id it replaced,
// for the rest (under /run: gone at the next boot).
const oldMachineIDFile = "run/fvm-reidentify.old-machine-id"

// journal writes the rest's lines that put the journal under the clone's
// machine id without restarting journald (a second of CPU under emulation,
// spent right when the host may be starting the next clone): journald goes
// on writing the files it has open, their directory is renamed to the new
// id (what journalctl reads as this machine's journal) and the old name
// links to it (the paths journald rotates and vacuums by). Entries carry
// the replaced machine id until the next boot, when journald sets that
// system.journal aside as another machine's and starts a new one. Where
// nothing was moved or a move went half way, journald restarts instead.
func journal(w func(string, ...any), newID string, services bool) {
	w("# The journal under the clone's machine id (see journal in reidentify.go).")
	w(`old=; [ ! -f "$R"/%s ] || read -r old < "$R"/%s || true`, oldMachineIDFile, oldMachineIDFile)
	w(`case $old in %s|*[!0-9a-f]*) old= ;; esac; [ ${#old} -eq 32 ] || old=`, newID)
	w("moved=; broken=")
	w(`for j in "$R"/var/log/journal "$R"/run/log/journal; do`)
	w(`  [ -n "$old" ] && [ -d "$j/$old" ] && [ ! -L "$j/$old" ] && [ ! -e "$j/%s" ] || continue`, newID)
	w(`  if mv -T -- "$j/$old" "$j/%s"; then ln -s %s "$j/$old" && moved=1 || broken=1; fi`, newID, newID)
	w("done")
	w(`for j in "$R"/var/log/journal "$R"/run/log/journal; do [ ! -d "$j/%s" ] || moved=1; done`, newID)
	if services {
		w(`[ -n "$moved" ] && [ -z "$broken" ] || systemctl restart --no-block systemd-journald || true`)
	}
}

// readBack prints "reidentified HOSTNAME MACHINE-ID" as the guest under root
// reads them: Rest's last line.
func readBack(root string) string {
	return fmt.Sprintf(`h=; m=; read -r h < %[1]s/proc/sys/kernel/hostname || true; read -r m < %[1]s/etc/machine-id || true; echo "reidentified $h $m"`, root)
}

// ReadBackCommand prints what ReadBack checks, for a clone's identity read
// over SSH.
var ReadBackCommand = readBack("")

// ReadBack checks the last line of Rest's output (or ReadBackCommand's): the guest's hostname and
// machine id are the clone's.
func ReadBack(out string, hostname, machineID string) error {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	got := strings.Fields(lines[len(lines)-1])
	if len(got) != 3 || got[0] != "reidentified" || got[1] != hostname || got[2] != machineID {
		return fmt.Errorf("re-identification did not take: the guest reads back %q, want hostname %s and machine id %s", got, hostname, machineID)
	}
	return nil
}

// escapeBytes renders b for a single-quoted printf format: letters and
// digits as they are, every other byte as \xHH (so a quote, a backslash, a
// percent sign or a NUL byte is only ever data).
func escapeBytes(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			s.WriteByte(c)
			continue
		}
		fmt.Fprintf(&s, "\\x%02x", c)
	}
	return s.String()
}

func trimAll(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
