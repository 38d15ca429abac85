package cloudinit

import "fmt"

// SSH over a virtio-serial port: for backends whose guests have no network the
// host can reach (libvirt, whose guests use QEMU's user NIC on a host that may be
// another machine), the guest's sshd also serves the port /dev/virtio-ports/NAME,
// one connection at a time: a systemd unit runs `sshd -i` on it, restarted after
// each connection. The host reaches the port as a stream of its hypervisor
// (libvirt's virDomainOpenChannel) and holds its one pinned SSH connection there.
//
// Why this works without racing the host: the unit opens the port once,
// read-write (the same path for stdin and stdout), and the guest kernel blocks a
// write to a virtio-serial port while no host side is connected, so each new
// sshd's banner waits for the next host connection. A host connection made while
// the unit restarts may meet the previous sshd's end: the host retries until it
// reads a fresh banner (sshx.WaitReady).

// SSHPortUnit is the unit's name in the guest.
const SSHPortUnit = "fvm-ssh-port.service"

// sshPortUnit is the unit for the port NAME. RuntimeDirectoryPreserve keeps
// /run/sshd (shared with ssh.service) across restarts; no start limit, since a
// restart per connection is its normal life.
func sshPortUnit(port string) string {
	dev := "/dev/virtio-ports/" + port
	return fmt.Sprintf(`[Unit]
Description=fvm: sshd for the host on the virtio-serial port %[1]s
ConditionPathExists=%[2]s
StartLimitIntervalSec=0

[Service]
ExecStart=/usr/sbin/sshd -i -e
StandardInput=file:%[2]s
StandardOutput=file:%[2]s
StandardError=journal
RuntimeDirectory=sshd
RuntimeDirectoryMode=0755
RuntimeDirectoryPreserve=yes
Restart=always
RestartSec=100ms

[Install]
WantedBy=multi-user.target
`, port, dev)
}

// sshPortCommand installs and starts the unit at boot (bootcmd: it runs before
// write_files and before the guest's own sshd is up, so the host's first
// connection does not wait for the end of cloud-init). It does nothing when the
// VM has no such port.
func sshPortCommand(port string) []string {
	unit := "/etc/systemd/system/" + SSHPortUnit
	sh := fmt.Sprintf("[ -e /dev/virtio-ports/%[1]s ] || exit 0; "+
		"if ! [ -e %[2]s ]; then printf '%%s' %[3]s > %[2]s && systemctl daemon-reload && systemctl enable %[4]s; fi; "+
		"systemctl start --no-block %[4]s", port, unit, shellQuote(sshPortUnit(port)), SSHPortUnit)
	return []string{"sh", "-c", sh}
}

// shellQuote quotes s for sh as one word.
func shellQuote(s string) string {
	out := "'"
	for _, r := range s {
		if r == '\'' {
			out += `'\''`
		} else {
			out += string(r)
		}
	}
	return out + "'"
}
