#!/usr/bin/env bash
# Starts and stops a libvirt daemon for the libvirt backend's tests, where no systemd
# runs (CI, containers):
#
#   scripts/libvirtd.sh start STATE_DIR [USER]   # prints the URI to connect to
#   scripts/libvirtd.sh stop STATE_DIR
#
# Without USER, as root: the system daemon (qemu:///system), with virtlogd (libvirtd
# hands each guest's serial log to it). With USER: that user's session daemon
# (qemu:///session), its runtime dir under STATE_DIR, reachable by root through
# qemu+unix:///session?socket=... A daemon that already serves the socket is used as it
# is and left running by stop; only what start started (pid files in STATE_DIR) is stopped.
#
# Network rule: libvirt's NAT network (192.168.122.0/24) must never start here. The
# packages setup.sh installs define no network; this script refuses to start a daemon
# that would autostart one.
set -euo pipefail
cmd=${1:-} state=${2:-} user=${3:-}
[[ -n $cmd && -n $state ]] || { echo "usage: $0 start|stop STATE_DIR [USER]" >&2; exit 2; }
mkdir -p "$state"
state=$(cd "$state" && pwd)

if [[ -n $user ]]; then
	home=$(getent passwd "$user" | cut -d: -f6)
	[[ -n $home ]] || { echo "libvirtd.sh: no user $user" >&2; exit 1; }
	rt=$state/rt-$user
	sock=$rt/libvirt/libvirt-sock
	uri="qemu+unix:///session?socket=$sock"
	autostart=$home/.config/libvirt/qemu/networks/autostart
	tag=$user
else
	[[ $(id -u) -eq 0 ]] || { echo "libvirtd.sh: the system daemon needs root (or give a USER for a session daemon)" >&2; exit 1; }
	rt="" home=""
	sock=/run/libvirt/libvirt-sock
	uri="qemu:///system"
	autostart=/etc/libvirt/qemu/networks/autostart
	tag=system
fi

# subreaped CMD...: runs CMD (libvirtd in the foreground) in the background
# under tini as its subreaper. libvirtd starts each QEMU (its capability
# probes, every domain) daemonized, so the QEMU is reparented to the nearest
# subreaper, else PID 1, and libvirtd waits until the ended QEMU is gone.
# Where PID 1 is no systemd (CI, containers: here an init that reaps
# seconds later), every probe and start waited so: a first start 2-4
# minutes instead of 4 s, each capabilities call 8 s instead of 1.5 s.
subreaped() {
	setsid tini -s -- "$@" </dev/null >>"$state/libvirtd-$tag.out" 2>&1 &
}

stop_pid() { # stop_pid FILE: SIGTERM, then SIGKILL after 10 s
	local f=$1 pid
	[[ -f $f ]] || return 0
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

case $cmd in
start)
	if compgen -G "$autostart/*.xml" >/dev/null; then
		echo "libvirtd.sh: $autostart has networks that libvirtd would start (libvirt's NAT network is off limits here): remove them first" >&2
		exit 1
	fi
	if [[ -z $user ]]; then
		# The system daemon hands each guest's serial log to virtlogd: without
		# one (a socket file left by a virtlogd killed earlier, or stopped by
		# another test's stop) every domain start fails, so it is checked even
		# when libvirtd already runs.
		mkdir -p /var/log/libvirt /var/lib/libvirt /var/cache/libvirt /run/libvirt
		if ! pgrep -u root -x virtlogd >/dev/null; then
			rm -f /run/libvirt/virtlogd-sock /run/libvirt/virtlogd-admin-sock
			virtlogd -d -p "$state/virtlogd-$tag.pid"
		fi
	fi
	if virsh -q -c "$uri" version >/dev/null 2>&1; then
		echo "$uri"
		exit 0
	fi
	if [[ -n $user ]]; then
		install -d -m 0700 -o "$user" "$rt"
		# The session daemon spawns its own virtlogd on demand.
		subreaped runuser -u "$user" -- env HOME="$home" XDG_RUNTIME_DIR="$rt" XDG_CONFIG_HOME="$home/.config" libvirtd -p "$rt/libvirtd.pid"
		for _ in $(seq 1 100); do [[ -s $rt/libvirtd.pid ]] && break; sleep 0.1; done
		cp "$rt/libvirtd.pid" "$state/libvirtd-$tag.pid"
	else
		subreaped libvirtd -p "$state/libvirtd-$tag.pid"
	fi
	for _ in $(seq 1 150); do
		virsh -q -c "$uri" version >/dev/null 2>&1 && break
		sleep 0.2
	done
	if ! virsh -q -c "$uri" version >/dev/null 2>&1; then
		echo "libvirtd.sh: libvirtd did not answer on $sock within 30 s (see /var/log/libvirt/libvirtd.log or the user's ~/.cache/libvirt)" >&2
		exit 1
	fi
	# A first start probes every QEMU binary for its capabilities (4-6 s here
	# under tini), and a daemon stopped before the probe ends starts it over
	# next time. Wait for all of it here (the host's capabilities list every
	# binary's): the tests' timings start after it, and the cache in
	# /var/cache/libvirt serves later starts.
	t0=$SECONDS
	if ! timeout 600 virsh -q -c "$uri" capabilities >/dev/null; then
		echo "libvirtd.sh: libvirtd did not say its QEMU capabilities within 10 minutes (see /var/log/libvirt/libvirtd.log)" >&2
		exit 1
	fi
	if ((SECONDS - t0 > 2)); then echo "libvirtd.sh: libvirtd probed QEMU in $((SECONDS - t0)) s" >&2; fi
	echo "$uri"
	exit 0
	;;
stop)
	for f in "$state"/libvirtd-*.pid; do [[ -e $f ]] && stop_pid "$f"; done
	for f in "$state"/virtlogd-*.pid; do [[ -e $f ]] && stop_pid "$f"; done
	exit 0
	;;
*)
	echo "usage: $0 start|stop STATE_DIR [USER]" >&2
	exit 2
	;;
esac
