package debianbuild

import (
	"fmt"
	"strings"
)

// Recipes. The lean one (the default) is the classic image made for VMs run
// by fvm: same packages, same cloud-init, same boot, less waiting. The
// classic one stays buildable, unchanged (same cache key as before the lean
// one existed), to compare the two (`make bench`).
const (
	RecipeLean    = "lean"
	RecipeClassic = "classic"
)

// Recipes lists the recipe names, the default first.
func Recipes() []string { return []string{RecipeLean, RecipeClassic} }

func checkRecipe(name string) (string, error) {
	switch name {
	case "", RecipeLean:
		return RecipeLean, nil
	case RecipeClassic:
		return RecipeClassic, nil
	}
	return "", fmt.Errorf("--recipe %s: use %s", name, strings.Join(Recipes(), " or "))
}

// leanRecipeVersion is the lean recipe's version (recipeVersion is the classic one's).
const leanRecipeVersion = "13-lean"

// leanGrubKernelArgs end the kernel command line of the lean image's GRUB
// (UEFI boots: libvirt, vz, other tools) as fvm's QEMU driver ends the one it
// boots directly with: the guest reboots 5 s after a kernel panic or oops.
// Under multi-threaded TCG about one boot in fifteen dies of "Oops: int3"
// (the kernel patching its code on one CPU while another runs it); without
// these such a guest hangs until the wait for it gives up.
const leanGrubKernelArgs = " panic=5 oops=panic"

// leanHook (customize, "$1" = the root directory, after customizeHook) is
// what the lean recipe changes, each measured under TCG (BENCHMARKS.md):
//
//   - sshd listens (ssh.service, replaced by fvm's: `sshd -D` started once
//     basic.target is reached, not after network.target, which waits for
//     ifup; no `sshd -t` start before it). A connection costs a fork and
//     sshd-session's start, where one sshd per connection (sshd.socket,
//     this recipe until 10-lean) also cost systemd's unit instance and an
//     sshd start: 0.8 s of a warm clone's first connection under emulation.
//     A warm clone's new host key is loaded by signalling the listener
//     (SIGHUP: it re-executes itself, same pid), right after the key is
//     written, so sshd starts again while the rest of the re-identification
//     runs and the host polls for the new key.
//   - sshd-keygen.service is masked: on a first boot it ran `ssh-keygen -A`
//     before sshd, seconds of RSA under emulation, for keys fvm never uses (it
//     injects an ed25519 key; cloud-init makes keys when nothing injects one).
//   - Timers that have no business in a short-lived VM's first minutes stay,
//     but e2scrub_reap (a boot-time scan for LVM snapshots, of which there are
//     none) is disabled.
//   - Work every new VM did on its first boot before sysinit.target (which
//     now gates SSH) is done once, here: the units with
//     ConditionNeedsUpdate= (ldconfig, the journal's message catalog) find
//     /etc and /var stamped up to date with /usr, as systemd-update-done
//     leaves them after that first boot.
//   - Growing the root partition and filesystem (cloud-init's growpart and
//     resizefs: seconds under emulation) moves from cloud-init's network
//     stage, which sysinit.target and so SSH wait for, to its final stage,
//     first thing: the disk is grown by the time cloud-init is done (what
//     `fvm wait` and `run --wait` wait for), before packages are installed.
//   - The root filesystem is not checked at boot (fstab pass 0): a journaled
//     ext4 of a VM recovers at mount; the check's units stood between the
//     kernel and cloud-init's start.
//   - Chipset drivers a VM run by fvm has no use for (q35's SMBus, LPC and
//     TCO watchdog, the PC speaker) are not loaded: each module costs its
//     decompression and load under emulation.
//   - An SSH login does not run /etc/update-motd.d (pam_motd's
//     motd=/run/motd.dynamic: run-parts and uname, 0.26 s under emulation on
//     every login, more right after a restore; the login of a warm clone's
//     first connection is part of its wait). /etc/motd is still shown.
//   - cloud-init's config stage (and so its final stage, with the user's
//     packages) starts once the systemd manager of each lingering user is up.
//     fvm's seed makes its user linger, and a VM is ready once that user's
//     first login ran, which waits for that manager: the two no longer
//     compete for the guest's CPUs right when fvm waits. It waits for
//     logind first, which queues the lingering users' managers as it starts,
//     then joins that start job: no polling, and with no lingering user
//     nothing to wait for. Each wait is bounded (60 s); none is fatal.
//   - cloud-init's local stage starts once udev has handled the network
//     interfaces the kernel made (their names final): it writes the network
//     config under the names it finds, and under TCG udev could still be
//     about to rename eth0 to enp0s3 then (ifupdown then failed on "eth0":
//     a VM with no network, its SSH wait running out after 10 minutes).
//   - systemd's generators that find nothing to do in a VM run by fvm do
//     not run (masked in /etc/systemd/system-generators): sshd over AF_VSOCK
//     (its probe loads the vsock and VMCI modules, then fails: fvm reaches
//     sshd over the network), GPT partition auto-discovery (the root is
//     named by UUID, the ESP is not mounted), hibernation resume (no swap),
//     TPM2 (no TPM) and offline system updates (Debian has none). Every
//     generator runs before systemd queues the first job, each a program
//     started under emulation: that stretch was 0.5 s shorter on average in
//     three cold boots each (2 s in one reboot), the vsock modules gone.
//   - /etc/fvm/kernel-cmdline asks fvm's QEMU driver to boot the kernel
//     directly (what /vmlinuz and /initrd.img point to, read from the VM's
//     disk at each cold boot, with this command line): no UEFI firmware, no
//     GRUB, seconds less per boot under emulation. The EFI system partition
//     and GRUB stay, so the image boots anywhere UEFI does.
//   - udev's coldplug (every device's rules and module loads: 11 of the 60
//     CPU-seconds two vCPUs have in a 30 s cold boot under TCG) yields the
//     CPUs while the system starts (StartupCPUWeight=20 against the other
//     services' 100; full weight once startup is done, a few seconds after
//     the first login): what SSH and the first login wait for (fvm-init,
//     sshd, logind, the user's manager) runs first, the sound card, the
//     framebuffer and the CPU's crypto and KVM modules load a few seconds
//     later. Five cold boots each, in turns: SSH ready 27.2 s against 32.4 s
//     on average, each pair 3.5-8.4 s apart. The guest agent does not wait
//     for udev (it opens its port's kernel node: fvminit.go), and the
//     display's USB keyboard and tablet drivers load early beside the boot
//     (fvm-input.service), so that typing into the display works as soon as
//     a login prompt shows.
//     A warm snapshot's template waits for udev to be done before it is
//     saved, so clones never inherit a half-done coldplug.
//   - The user's ssh-agent socket (Debian's, started with the user's
//     manager) no longer runs `systemctl --user set-environment` as it
//     starts: environment.d gives the manager SSH_AUTH_SOCK. That systemctl
//     was 0.2-0.4 s of the manager's start under emulation, which the first
//     login (and so `run -d`) waits for.
//   - That command line turns cloud-init off and fvm-init on (fvminit.go).
const leanHook = `set -eu
root="$1"
mkdir -p "$root/etc/fvm"
echo 'root=UUID=@ROOT_UUID@ ro console=tty0 console=@CONSOLE@,115200 cloud-init=disabled fvm.init net.ifnames=0' > "$root/etc/fvm/kernel-cmdline"
# sshd listens from early in the boot: no wait for network.target (it binds
# the wildcard address), no second sshd start to test its config first.
cat > "$root/etc/systemd/system/ssh.service" <<'EOF'
[Unit]
Description=OpenBSD Secure Shell server (fvm: listening from early in the boot)
Documentation=man:sshd(8) man:sshd_config(5)
After=nss-user-lookup.target auditd.service
ConditionPathExists=!/etc/ssh/sshd_not_to_be_run

[Service]
EnvironmentFile=-/etc/default/ssh
ExecStart=/usr/sbin/sshd -D $SSHD_OPTS
ExecReload=/usr/sbin/sshd -t
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
Restart=on-failure
RestartPreventExitStatus=255
Type=notify
RuntimeDirectory=sshd
RuntimeDirectoryMode=0755

[Install]
WantedBy=multi-user.target
Alias=sshd.service
EOF
unit() { [ -e "$root/usr/lib/systemd/system/$1" ] || [ -e "$root/lib/systemd/system/$1" ]; }
if unit ssh.socket; then chroot "$root" systemctl disable ssh.socket; fi
chroot "$root" systemctl reenable ssh.service
if unit sshd-keygen.service; then chroot "$root" systemctl mask sshd-keygen.service; fi
if unit e2scrub_reap.service; then chroot "$root" systemctl disable e2scrub_reap.service; fi
mkdir -p "$root/etc/systemd/system-generators"
for g in systemd-ssh-generator systemd-gpt-auto-generator systemd-hibernate-resume-generator systemd-tpm2-generator systemd-system-update-generator; do
	if [ -e "$root/usr/lib/systemd/system-generators/$g" ] || [ -e "$root/lib/systemd/system-generators/$g" ]; then
		ln -sf /dev/null "$root/etc/systemd/system-generators/$g"
	fi
done
mkdir -p "$root/etc/systemd/system/systemd-udevd.service.d"
cat > "$root/etc/systemd/system/systemd-udevd.service.d/fvm-lean.conf" <<'EOF'
# fvm's lean image: udev's coldplug yields the CPUs while the system starts;
# what SSH and the first login wait for runs first.
[Service]
StartupCPUWeight=20
EOF
cat > "$root/etc/systemd/system/fvm-input.service" <<'EOF'
[Unit]
Description=fvm: the display's USB keyboard and tablet drivers, early
DefaultDependencies=no
Conflicts=shutdown.target
Before=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=-/usr/sbin/modprobe -a -q xhci_pci usbhid hid_generic

[Install]
WantedBy=sysinit.target
EOF
chroot "$root" systemctl enable fvm-input.service
cat > "$root/etc/modprobe.d/fvm-lean.conf" <<'EOF'
# fvm's lean image: chipset drivers a VM run by fvm has no use for.
blacklist pcspkr
blacklist i2c_i801
blacklist lpc_ich
blacklist iTCO_wdt
blacklist iTCO_vendor_support
EOF
cat > "$root/etc/cloud/cloud.cfg.d/91_fvm_lean.cfg" <<'EOF'
# fvm's lean image: growpart and resizefs run first in the final stage, not in
# the network stage that SSH waits for (Debian's lists otherwise).
cloud_init_modules: [seed_random, bootcmd, write-files, disk_setup, mounts, set_hostname, update_hostname, update_etc_hosts, ca-certs, rsyslog, users-groups, ssh]
cloud_final_modules: [growpart, resizefs, package-update-upgrade-install, fan, landscape, lxd, write-files-deferred, puppet, chef, mcollective, salt-minion, reset_rmc, scripts-vendor, scripts-per-once, scripts-per-boot, scripts-per-instance, scripts-user, ssh-authkey-fingerprints, keys-to-console, install-hotplug, phone-home, final-message, power-state-change]
EOF
mkdir -p "$root/usr/libexec/fvm" "$root/etc/systemd/system/cloud-config.service.d"
cat > "$root/usr/libexec/fvm/wait-lingering-managers" <<'EOF'
#!/bin/sh
# fvm's lean image: returns once the systemd manager of every lingering user
# is up (cloud-config.service runs it first). logind queues their start as
# it starts; "systemctl start" joins that job and waits for it.
set -u
for f in /var/lib/systemd/linger/*; do
	[ -e "$f" ] || continue
	uid=$(id -u "${f##*/}") || continue
	timeout 60 systemctl start systemd-logind.service
	timeout 60 systemctl start "user@$uid.service"
done
exit 0
EOF
chmod 755 "$root/usr/libexec/fvm/wait-lingering-managers"
cat > "$root/usr/libexec/fvm/wait-net-names" <<'EOF'
#!/bin/sh
# fvm's lean image: returns once udev has handled every network interface the
# kernel has made so far (its add event done, so its name is final), at most
# 30 s. cloud-init's local stage (which runs this first) writes the network
# config under the names it finds: a NIC that udev had yet to rename from
# eth0 got "auto eth0", and the VM no network at all.
i=0
while [ "$i" -lt 300 ]; do
	pending=
	for d in /sys/class/net/*; do
		[ "${d##*/}" != lo ] && [ -r "$d/ifindex" ] || continue
		read -r idx < "$d/ifindex" || continue
		[ -e "/run/udev/data/n$idx" ] || pending=1
	done
	[ -z "$pending" ] && exit 0
	sleep 0.1
	i=$((i + 1))
done
exit 0
EOF
chmod 755 "$root/usr/libexec/fvm/wait-net-names"
mkdir -p "$root/etc/systemd/system/cloud-init-local.service.d"
cat > "$root/etc/systemd/system/cloud-init-local.service.d/fvm-lean.conf" <<'EOF'
# fvm's lean image: the local stage names the NICs as udev left them
# (/usr/libexec/fvm/wait-net-names).
[Service]
ExecStartPre=-/usr/libexec/fvm/wait-net-names
EOF
cat > "$root/etc/systemd/system/cloud-config.service.d/fvm-lean.conf" <<'EOF'
# fvm's lean image: the config stage waits for the lingering users' managers,
# which the first login waits for (/usr/libexec/fvm/wait-lingering-managers).
[Service]
ExecStartPre=-/usr/libexec/fvm/wait-lingering-managers
EOF
if [ -e "$root/usr/lib/systemd/user/ssh-agent.socket" ]; then
	mkdir -p "$root/etc/systemd/user/ssh-agent.socket.d" "$root/etc/environment.d"
	cat > "$root/etc/systemd/user/ssh-agent.socket.d/fvm-lean.conf" <<'EOF'
# fvm's lean image: the user's manager has SSH_AUTH_SOCK from environment.d
# (/etc/environment.d/90-fvm-ssh-agent.conf), not from a systemctl run as
# this socket starts, which the first login waited for.
[Socket]
ExecStartPost=
ExecStopPre=
EOF
	echo 'SSH_AUTH_SOCK=${XDG_RUNTIME_DIR}/openssh_agent' > "$root/etc/environment.d/90-fvm-ssh-agent.conf"
fi
sed -i 's|^session\s\+optional\s\+pam_motd\.so\s\+motd=/run/motd\.dynamic|# fvm lean image: no update-motd.d at each login\n#&|' "$root/etc/pam.d/sshd"
sed -i 's/\t0\t1$/\t0\t0/' "$root/etc/fstab"
chroot "$root" ldconfig
chroot "$root" journalctl --update-catalog
if [ -x "$root/usr/lib/systemd/systemd-update-done" ]; then chroot "$root" /usr/lib/systemd/systemd-update-done; fi
` + fvmInitHook
