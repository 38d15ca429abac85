package debianbuild

// fvmInitHook (the end of leanHook) installs fvm-init: what provisions a VM
// when fvm's QEMU driver boots the lean image's kernel directly. The command
// line it boots with (/etc/fvm/kernel-cmdline) says "cloud-init=disabled
// fvm.init": cloud-init's generator leaves cloud-init off for that boot
// (`cloud-init status` says "disabled"), and these units read the seed's
// fvm-init/ directory (cloudinit.InitFiles) instead of its YAML. fvm passes
// no user-data of its users', so what cloud-init did with fvm's seed is all
// there is to do: the user with its keys and passwordless sudo, the host
// key, the hostname and /etc/hosts, sshd's drop-in, linger, a machine id of
// its own for a copy of another VM's disk, the address of the NIC with the
// seed's MAC, the shares at every boot, and growpart. Under TCG cloud-init's
// Python start-up and its stages before sysinit.target were half of a cold
// boot's userspace (BENCHMARKS.md). Booted through GRUB (libvirt, vz, any UEFI) the
// image runs cloud-init on the same seed, as before.
//
//   - fvm-init.service, before sysinit.target (so before sshd's socket,
//     logind and the guest agent): the per-instance work when the seed's
//     instance id is new, then the every-boot commands (the shares).
//   - fvm-net.service, before the network: finds the NIC with the seed's MAC
//     (60 s at most; its driver is loaded early by modules-load.d). With
//     fvm.net= on the command line (fvm's QEMU driver: the fixed addresses of
//     its user-mode network) it sets the address, route and DNS server at
//     once, one program, and writes an ifupdown stanza without "auto" for
//     them; else it writes a DHCP stanza that networking.service brings up
//     (ifup, dhclient and their hooks: 8-14 s of a cold boot under TCG,
//     which the agent and so SSH waited for). ifupdown-pre's wait for every
//     udev event (`udevadm settle`, 13-20 s of a later boot under TCG) is
//     then skipped. Without net.ifnames=0 it would also wait for udev to
//     have renamed the NIC.
//   - fvm-final.service, after the lingering users' managers and the first
//     login (fvm's, 60 s at most): grows the root partition and filesystem to
//     the VM's disk at every boot, as cloud-init's growpart did in its final
//     stage. `fvm wait` waits for it.
//   - Logins need not wait for the network (systemd-user-sessions without
//     After=network.target): the guest has its address, and the host's first
//     SSH attempt comes, before ifup is done, and pam_nologin refused it.
//   - The guest agent starts once the network is up (fvm-net's address, or
//     cloud-init's network stage through GRUB): fvm's first SSH attempt waits
//     for it, and a network still down 30 s after it answered is named.
//   - The NIC keeps the kernel's name (net.ifnames=0: eth0), so nothing waits
//     for udev to rename it.
const fvmInitHook = `
mkdir -p "$root/usr/libexec/fvm"
cat > "$root/usr/libexec/fvm/fvm-init" <<'FVMEOF'
#!/bin/bash
# fvm-init: provisions this VM from the fvm-init/ directory of fvm's seed
# (the volume labelled cidata), where fvm boots this image with cloud-init off.
# Under emulation each program started costs 50-100 ms: files are read and
# written with bash's own builtins, and a program runs only where it must.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "fvm-init: $*"; }
seed=/run/fvm/seed
mkdir -p "$seed"
[ -d /var/lib/fvm ] || mkdir /var/lib/fvm
dev=
for ((i = 0; i < 100; i++)); do
	dev=$(blkid -c /dev/null -l -o device -t LABEL=cidata 2> /dev/null) && [ -n "$dev" ] && break
	sleep 0.1
done
if [ -z "$dev" ] || ! mount -t iso9660 -o ro "$dev" "$seed"; then
	say "no seed volume labelled cidata: this VM is not provisioned (boot it with fvm, or without fvm.init)"
	exit 1
fi
trap 'umount "$seed" 2> /dev/null' EXIT
d=$seed/fvm-init
get() { local v=; read -r v < "$d/$1"; printf '%s' "$v"; }
# put FILE UMASK SOURCE: SOURCE's text as FILE; a new file is made under
# UMASK, one that exists keeps its owner and mode (as fvm-init or a warm
# clone's re-identification made it).
put() { (umask "$2"; printf '%s\n' "$(< "$3")" > "$1"); }
id=$(get instance-id)
if [ -z "$id" ]; then
	say "the seed has no fvm-init/instance-id: it was written by an fvm older than this image"
	exit 1
fi
printf '%s\n' "$(get mac)" > /run/fvm/mac
old=
[ ! -r /var/lib/fvm/instance-id ] || read -r old < /var/lib/fvm/instance-id
if [ "$id" != "$old" ]; then
	user=$(get user) host=$(get hostname) uid=$(get uid)
	if [ -e "$d/new-machine-id" ]; then
		rm -f /etc/machine-id
		[ -L /var/lib/dbus/machine-id ] || rm -f /var/lib/dbus/machine-id
		systemd-machine-id-setup > /dev/null && systemctl --no-block restart systemd-journald
	fi
	printf '%s\n' "$host" > /etc/hostname
	printf '%s' "$host" > /proc/sys/kernel/hostname
	printf '127.0.1.1 %s %s\n127.0.0.1 localhost\n\n::1 localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n' "$host" "$host" > /etc/hosts
	pw() { local n x; while IFS=: read -r n x puid pgid x home x; do [ "$n" = "$user" ] && return 0; done < /etc/passwd; return 1; }
	if ! pw; then
		# A new user's password is locked ("!"), as cloud-init's lock_passwd.
		useradd -m -s /bin/bash ${uid:+-u "$uid"} "$user" || say "useradd $user failed"
		pw || { say "no user $user"; exit 1; }
	fi
	printf '# written by fvm-init\n%s ALL=(ALL) NOPASSWD:ALL\n' "$user" > /run/fvm/sudoers
	put /etc/sudoers.d/90-fvm-users 0337 /run/fvm/sudoers
	new=
	[ -d "$home/.ssh" ] || { mkdir -m 700 "$home/.ssh"; new=1; }
	[ -e "$home/.ssh/authorized_keys" ] || new=1
	put "$home/.ssh/authorized_keys" 0177 "$d/authorized_keys"
	[ -z "$new" ] || chown "$puid:$pgid" "$home/.ssh" "$home/.ssh/authorized_keys"
	for f in /etc/ssh/ssh_host_*; do
		case $f in /etc/ssh/ssh_host_ed25519_key | /etc/ssh/ssh_host_ed25519_key.pub) ;; *) [ ! -e "$f" ] || rm -f "$f" ;; esac
	done
	put /etc/ssh/ssh_host_ed25519_key 0177 "$d/ssh_host_ed25519_key"
	put /etc/ssh/ssh_host_ed25519_key.pub 0133 "$d/ssh_host_ed25519_key.pub"
	put /etc/ssh/sshd_config.d/60-fvm.conf 0133 "$d/sshd_config"
	[ -d /var/lib/systemd/linger ] || mkdir -p /var/lib/systemd/linger
	: > "/var/lib/systemd/linger/$user"
	printf '%s\n' "$id" > /var/lib/fvm/instance-id
	say "provisioned instance $id: user $user, hostname $host"
fi
source "$d/boot.sh"
: > /run/fvm/init
exit 0
FVMEOF
cat > "$root/usr/libexec/fvm/fvm-net" <<'FVMEOF'
#!/bin/bash
# fvm-net: the NIC with the seed's MAC, under the name udev gave it: the
# address fvm.net= on the command line gives, set here and now, or DHCP.
set -u
say() { echo "fvm-net: $*"; }
read -r mac < /run/fvm/mac || { say "no MAC from fvm-init"; exit 0; }
# With net.ifnames=0 (fvm's direct boot) the kernel's name is final; else
# udev may be about to rename eth0, and its database says when it is done.
named= static=
read -r -a words < /proc/cmdline
for w in "${words[@]}"; do
	case $w in
	net.ifnames=0) named=1 ;;
	fvm.net=*) static=${w#fvm.net=} ;;
	esac
done
name=
for ((i = 0; i < 600; i++)); do
	for n in /sys/class/net/*; do
		read -r a < "$n/address" 2> /dev/null && [ "$a" = "$mac" ] || continue
		read -r idx < "$n/ifindex" && { [ -n "$named" ] || [ -e "/run/udev/data/n$idx" ]; } || continue
		name=${n##*/}
		break 2
	done
	sleep 0.1
done
if [ -z "$name" ]; then
	say "no network interface with MAC $mac after 60 s: this VM has no network"
	exit 0
fi
conf=/etc/network/interfaces.d/50-fvm
# fvm.net=ADDRESS/PREFIX,GATEWAY,DNS: fvm's QEMU driver gives the addresses
# of its user-mode network, the same for every VM (each has its own QEMU).
# Set with one program, no DHCP (ifup, dhclient and their hooks held the
# network for 8-14 s of a cold boot under emulation). The stanza records
# them for ifupdown, without "auto": networking.service's ifup -a leaves
# the NIC as it is set here.
want=
if [ -n "$static" ]; then
	IFS=, read -r addr gw dns <<< "$static"
	if [ -n "$addr" ] && [ -n "$gw" ] && printf 'link set dev %s up\naddr replace %s dev %s\nroute replace default via %s dev %s\n' "$name" "$addr" "$name" "$gw" "$name" | ip -batch -; then
		[ -z "$dns" ] || [ -L /etc/resolv.conf ] || printf '# written by fvm-net (fvm.net= on the kernel command line)\nnameserver %s\n' "$dns" > /etc/resolv.conf
		want=$(printf '# written by fvm-net: the NIC with MAC %s, set by fvm-net at boot (fvm.net=)\niface %s inet static\n\taddress %s\n\tgateway %s' "$mac" "$name" "$addr" "$gw")
	else
		say "fvm.net=$static: could not set $name's address that way; DHCP instead"
	fi
fi
[ -n "$want" ] || want=$(printf '# written by fvm-net: the NIC with MAC %s\nauto %s\niface %s inet dhcp' "$mac" "$name" "$name")
[ -e "$conf" ] && [ "$(< "$conf")" = "$want" ] || printf '%s\n' "$want" > "$conf"
rm -f /etc/network/interfaces.d/50-cloud-init
: > /run/fvm/net
FVMEOF
cat > "$root/usr/libexec/fvm/fvm-final" <<'FVMEOF'
#!/bin/bash
# fvm-final: the root partition and filesystem grown to the VM's disk.
set -u
root=$(findmnt -no SOURCE /) part=${root##*/}
if [ -e "/sys/class/block/$part/partition" ]; then
	disk=/dev/$(basename "$(readlink -f "/sys/class/block/$part/..")")
	growpart "$disk" "$(cat "/sys/class/block/$part/partition")" > /dev/null 2>&1
fi
resize2fs "$root" > /dev/null 2>&1 || { echo "fvm-final: resize2fs $root failed"; exit 1; }
FVMEOF
cat > "$root/usr/libexec/fvm/wait-first-session" <<'FVMEOF'
#!/bin/bash
# wait-first-session: returns once a login session exists (fvm's first command
# in the VM is one), at most 60 s: fvm-final's growpart then no longer
# competes with that login for the guest's CPUs.
for ((i = 0; i < 120; i++)); do
	for f in /run/systemd/sessions/*; do [ -e "$f" ] && exit 0; done
	sleep 0.5
done
exit 0
FVMEOF
chmod 755 "$root/usr/libexec/fvm/fvm-init" "$root/usr/libexec/fvm/fvm-net" "$root/usr/libexec/fvm/fvm-final" "$root/usr/libexec/fvm/wait-first-session"
cat > "$root/etc/systemd/system/fvm-init.service" <<'FVMEOF'
[Unit]
Description=fvm: provision this VM from fvm's seed (in place of cloud-init)
DefaultDependencies=no
ConditionKernelCommandLine=fvm.init
After=systemd-remount-fs.service systemd-sysusers.service
RequiresMountsFor=/var/lib
Before=sysinit.target systemd-logind.service systemd-user-sessions.service sshd.socket ssh.service network-pre.target
Conflicts=shutdown.target
Before=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/libexec/fvm/fvm-init
StandardOutput=journal+console

[Install]
WantedBy=sysinit.target
FVMEOF
cat > "$root/etc/systemd/system/fvm-net.service" <<'FVMEOF'
[Unit]
Description=fvm: the VM's network address
DefaultDependencies=no
ConditionKernelCommandLine=fvm.init
After=fvm-init.service
Wants=network-pre.target
Before=network-pre.target ifupdown-pre.service networking.service
Conflicts=shutdown.target
Before=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/libexec/fvm/fvm-net
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
FVMEOF
cat > "$root/etc/systemd/system/fvm-final.service" <<'FVMEOF'
[Unit]
Description=fvm: grow the root filesystem to the VM's disk
ConditionKernelCommandLine=fvm.init
After=fvm-init.service systemd-logind.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStartPre=-/usr/libexec/fvm/wait-lingering-managers
ExecStartPre=-/usr/libexec/fvm/wait-first-session
ExecStart=/usr/libexec/fvm/fvm-final

[Install]
WantedBy=multi-user.target
FVMEOF
# The NIC's driver loads early, not when udev's coldplug gets to it; so does
# the seed's filesystem, beside systemd's first units, not in fvm-init.
mkdir -p "$root/etc/modules-load.d"
printf 'virtio_net\nisofs\n' > "$root/etc/modules-load.d/fvm-init.conf"
# Logins are allowed once logind is up, not after the network: Debian's
# unit as it is, without After=network.target. The guest has its address
# (and so the host's first SSH attempt) before ifup and network.target are
# done, and until this unit ran pam_nologin refused that attempt.
sed '/^After=/s/ network\.target//' "$root/usr/lib/systemd/system/systemd-user-sessions.service" > "$root/etc/systemd/system/systemd-user-sessions.service"
grep -q '^After=' "$root/etc/systemd/system/systemd-user-sessions.service"
# fvm tries SSH once the guest agent answers, and names a network that has
# not come up 30 s after that: the agent starts once the network is up (or
# failed to come up) and sshd listens. Booted by fvm's QEMU driver that is
# once fvm-net set the address (before network-pre.target), not after
# networking.service's ifup -a, which then has only lo to do and took 4-5 s
# of a cold boot under TCG; booted through GRUB it is after cloud-init's
# network stage (itself after networking.service), as before. An ordering
# after a unit that does not run is none.
# Debian's unit binds the agent to udev's device for its port, which comes
# when udev's coldplug gets to that port: 3.5-6 s after sshd listened in a
# cold boot under TCG, the whole time the host waited. The kernel's node for
# the port (devtmpfs) is there from the virtio console driver's probe, early
# in the boot: the agent opens that one. The unit lives in /usr/local (it
# outlives an upgrade of the package, and "systemctl mask" still works).
cat > "$root/usr/libexec/fvm/qemu-ga-port" <<'FVMEOF'
#!/bin/sh
# qemu-ga-port: the QEMU guest agent on its virtio port's kernel node, found
# by the port's name, else on udev's link to it. A VM without the port (QEMU
# run without the agent's channel) has no agent: this exits quietly, and
# udev's rule for the port starts the unit again if one comes.
port=org.qemu.guest_agent.0
for d in /sys/class/virtio-ports/*; do
	name=; read -r name < "$d/name" 2> /dev/null || true
	if [ "$name" = "$port" ] && [ -c "/dev/${d##*/}" ]; then
		exec /usr/sbin/qemu-ga --method=virtio-serial --path="/dev/${d##*/}"
	fi
done
if [ -e "/dev/virtio-ports/$port" ]; then
	exec /usr/sbin/qemu-ga --method=virtio-serial --path="/dev/virtio-ports/$port"
fi
echo "qemu-ga-port: no virtio port named $port: no guest agent" >&2
exit 0
FVMEOF
chmod 755 "$root/usr/libexec/fvm/qemu-ga-port"
mkdir -p "$root/usr/local/lib/systemd/system"
cat > "$root/usr/local/lib/systemd/system/qemu-guest-agent.service" <<'FVMEOF'
[Unit]
Description=QEMU Guest Agent (fvm: on its port's kernel node, once the network is set and sshd listens)
After=network-pre.target cloud-init-network.service ssh.service systemd-user-sessions.service

[Service]
ExecStart=/usr/libexec/fvm/qemu-ga-port
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
FVMEOF
mkdir -p "$root/etc/systemd/system/ifupdown-pre.service.d"
cat > "$root/etc/systemd/system/ifupdown-pre.service.d/fvm-lean.conf" <<'FVMEOF'
# fvm-net waited for the NIC's final name: no need to wait for every udev event.
[Unit]
ConditionPathExists=!/run/fvm/net
FVMEOF
chroot "$root" systemctl enable fvm-init.service fvm-net.service fvm-final.service qemu-guest-agent.service
`
