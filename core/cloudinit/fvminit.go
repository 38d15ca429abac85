package cloudinit

import (
	"fmt"
	"strconv"
	"strings"
)

// InitDir is the seed's directory for fvm-init, the small provisioner of
// fvm's lean image (core/image/debianbuild/fvminit.go). When fvm's QEMU driver
// boots that image's kernel directly, its command line turns cloud-init off
// and fvm-init on: it does what cloud-init did with fvm's seed (user, keys,
// host key, hostname, NIC, shares, growpart) in shell, without cloud-init's
// Python start-up and its chain of stages before sysinit.target, which were
// half of a cold boot's userspace under emulation. Booted any other way (GRUB:
// libvirt, vz, other tools) the same image runs cloud-init on the same seed.
// Each value is a file of its own, read as is: nothing to parse in the guest.
const InitDir = "fvm-init"

// InitSSHDConfig is the sshd drop-in fvm-init installs (SSHDConfigFile): the
// session limit, and no passwords (what cloud-init's ssh_pwauth: false sets).
const InitSSHDConfig = SSHDConfig + "PasswordAuthentication no\n"

// InitFiles renders fvm-init's files, by their path on the seed volume.
func InitFiles(c Config) (map[string][]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	mac := strings.ToLower(strings.TrimSpace(c.MACAddress))
	if mac == "" {
		mac = DefaultMAC
	}
	priv := c.HostKeyPrivate
	if !strings.HasSuffix(priv, "\n") {
		priv += "\n"
	}
	keys := ""
	for _, k := range c.AuthorizedKeys {
		keys += strings.TrimSpace(k) + "\n"
	}
	uid := ""
	if c.UID > 0 {
		uid = strconv.Itoa(c.UID)
	}
	files := map[string]string{
		"instance-id":              c.InstanceID + "\n",
		"hostname":                 c.Hostname + "\n",
		"user":                     c.User + "\n",
		"uid":                      uid + "\n",
		"authorized_keys":          keys,
		"ssh_host_ed25519_key":     priv,
		"ssh_host_ed25519_key.pub": strings.TrimSpace(c.HostKeyPublic) + "\n",
		"sshd_config":              InitSSHDConfig,
		"mac":                      mac + "\n",
		"boot.sh":                  initBootScript(c),
	}
	if c.NewMachineID {
		files["new-machine-id"] = "a copy of another VM's disk: a machine id of its own\n"
	}
	out := make(map[string][]byte, len(files))
	for name, v := range files {
		out[InitDir+"/"+name] = []byte(v)
	}
	return out, nil
}

// initBootScript is what cloud-init's bootcmd does at every boot for fvm's
// seed (the shares' mounts, Rosetta, the virtio-serial sshd), one command
// per line; a failing one does not stop the next.
func initBootScript(c Config) string {
	var cmds [][]string
	for _, m := range c.Mounts {
		cmds = append(cmds, mountCommand(m))
	}
	if c.Rosetta {
		cmds = append(cmds, rosettaCommand())
	}
	if c.SSHPort != "" {
		cmds = append(cmds, sshPortCommand(c.SSHPort))
	}
	var b strings.Builder
	b.WriteString("# written by fvm: run by fvm-init at every boot\n")
	for n, cmd := range cmds {
		q := make([]string, len(cmd))
		for i, w := range cmd {
			q[i] = shellQuote(w)
		}
		line := strings.Join(q, " ")
		if n < len(c.Mounts) { // the shares' mounts come first
			// fvm-init runs while udev loads the share's transport: once under
			// load 9p found no device with the share's tag yet.
			line += " || { sleep 1; " + line + "; }"
		}
		fmt.Fprintf(&b, "%s || echo 'fvm-init: boot command %d failed' >&2\n", line, n+1)
	}
	return b.String()
}

// WaitCommand (bash, as the VM's user) returns once the guest's first-boot
// setup is done, printing cloud-init's last status lines and exiting with its
// status (`cloud-init status --wait`: 0 done, 1 error, 2 degraded). A boot
// that fvm-init provisioned (/run/fvm/init) has cloud-init off: there the
// wait is for fvm-final.service (growpart), and the status line says
// "(fvm-init)".
const WaitCommand = `if [ -e /run/fvm/init ]; then
	while :; do
		case $(systemctl is-active fvm-final.service) in
		active) echo "status: done (fvm-init)"; exit 0 ;;
		failed) echo "status: error (fvm-init)"; systemctl status --no-pager -n 3 fvm-final.service 2>&1 | tail -n 3; exit 1 ;;
		esac
		sleep 0.5
	done
fi
cloud-init status --wait 2>&1 | tail -n 3; exit ${PIPESTATUS[0]}`
