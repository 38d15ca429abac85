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
}

var (
	hexID  = regexp.MustCompile(`^[0-9a-f]{32}$`)
	instID = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	name   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	login  = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

func (id Identity) validate() error {
	var errs []error
	check := func(ok bool, what string) {
		if !ok {
			errs = append(errs, fmt.Errorf("re-identify: %s", what))
		}
	}
	check(name.MatchString(id.Hostname), "bad hostname")
	check(id.OldHostname == "" || name.MatchString(id.OldHostname), "bad template hostname")
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

// ReidentifyScript returns the bash script, run as root in the clone, that gives
// it id. Values enter it only as base64 or as validated tokens: nothing is
// interpreted by the shell.
func ReidentifyScript(id Identity) (string, error) {
	if err := id.validate(); err != nil {
		return "", err
	}
	keys := strings.Join(trimAll(id.AuthorizedKeys), "\n") + "\n"
	priv := id.HostKeyPrivate
	if !strings.HasSuffix(priv, "\n") {
		priv += "\n"
	}
	// Under TCG every program started costs tens of milliseconds: files are
	// written with bash's own printf (contents as \xHH escapes in a quoted
	// format, nothing for the shell to interpret), not by helper programs.
	var s strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&s, format+"\n", args...) }
	put := func(path, content string) { w("printf '%s' > %s", escapeBytes([]byte(content)), path) }
	w("#!/bin/bash")
	w("# fvm: make this warm clone its own machine")
	w("set -eu")
	w("export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	w("umask 077")
	if id.SetClock {
		w("# Clock first: the value is as fresh as it will be.")
		w("date -u -s @%d.%09d > /dev/null", id.Now.Unix(), id.Now.Nanosecond())
	}
	w("# The clone's own SSH host key. A per-connection sshd (fvm's image: sshd.socket)")
	w("# reads it at the next connection; a listening one is restarted below.")
	w("rm -f /etc/ssh/ssh_host_*")
	put("/etc/ssh/ssh_host_ed25519_key", priv)
	w("umask 022")
	put("/etc/ssh/ssh_host_ed25519_key.pub", strings.TrimSpace(id.HostKeyPublic)+"\n")
	w("# Hostname.")
	put("/etc/hostname", id.Hostname+"\n")
	put("/proc/sys/kernel/hostname", id.Hostname)
	old := id.OldHostname
	if old == "" {
		old = TemplateHostname
	}
	w("sed -i -e 's/\\b%s\\b/%s/g' /etc/hosts", old, id.Hostname)
	w("# Machine id (journald and D-Bus follow it).")
	put("/etc/machine-id", id.MachineID+"\n")
	w("if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then cat /etc/machine-id > /var/lib/dbus/machine-id; fi")
	w("# The user's keys.")
	w("umask 077")
	w("home=~%s", id.User)
	w(`[ -d "$home/.ssh" ] || { mkdir -p "$home/.ssh"; chown %s: "$home/.ssh"; }`, id.User)
	put(`"$home/.ssh/authorized_keys"`, keys)
	w(`chown %s: "$home/.ssh/authorized_keys"`, id.User)
	w("# cloud-init: the clone's seed is the instance it already ran for (a reboot keeps this identity).")
	w("umask 022")
	w("cd /var/lib/cloud")
	w("if [ -d instances/%s ] && [ ! -e instances/%s ]; then mv instances/%s instances/%s; fi", id.OldInstanceID, id.InstanceID, id.OldInstanceID, id.InstanceID)
	w("[ -d instances/%s ] || mkdir -p instances/%s data", id.InstanceID, id.InstanceID)
	w("ln -sfn /var/lib/cloud/instances/%s instance", id.InstanceID)
	put("data/instance-id", id.InstanceID+"\n")
	put("data/previous-instance-id", id.InstanceID+"\n")
	w("rm -f instances/%s/obj.pkl  # read the clone's seed at the next boot", id.InstanceID)
	w("# The machine id below is this instance's: the seed's once-per-instance replacement")
	w("# (for clones that boot cold) must not run at the next cold boot.")
	w("[ -d instances/%s/sem ] || mkdir -p instances/%s/sem", id.InstanceID, id.InstanceID)
	put(fmt.Sprintf("instances/%s/sem/%s", id.InstanceID, machineIDSemaphore), fmt.Sprintf("0\t%d\n", id.Now.Unix()))
	w("cd /")
	w("# Host randomness into the pool (the kernel also reseeded on the new VM generation id).")
	put("/dev/urandom", string(id.Entropy))
	if id.GrowDisk {
		w("# Grow the root filesystem to the clone's disk.")
		w(`root=$(findmnt -no SOURCE /); part=${root##*/}`)
		w(`if [ -e "/sys/class/block/$part/partition" ]; then`)
		w(`  disk=/dev/$(basename "$(readlink -f "/sys/class/block/$part/..")")`)
		w(`  growpart "$disk" "$(cat "/sys/class/block/$part/partition")" > /dev/null 2>&1 || true`)
		w("fi")
		w(`resize2fs "$root" > /dev/null 2>&1 || true`)
	}
	w("# A listening sshd restarts without blocking (the host polls for the new key); one sshd")
	w("# per connection (fvm's image: sshd.socket) reads the new key at the next connection.")
	w("# Globs match loaded units only: [s]sh is ssh.service itself, never an sshd@ instance.")
	w("[ -e /etc/systemd/system/sockets.target.wants/sshd.socket ] || systemctl try-restart --no-block '[s]sh.service' '[s]shd.service' || true")
	w("# What only has to follow soon runs two seconds on, detached, so that it does not slow")
	w("# the host's first connection down: the journal under the new machine id, and the")
	w("# consoles' login prompts, printed under the template's name, printed again.")
	w(`setsid -f bash -c 'sleep 2; systemctl restart --no-block systemd-journald; [ -e /dev/tty1 ] && printf "\033[H\033[2J\033[3J" > /dev/tty1; systemctl try-restart --no-block "getty@*.service" "serial-getty@*.service"' < /dev/null > /dev/null 2>&1 || true`)
	w("echo reidentified")
	return s.String(), nil
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
