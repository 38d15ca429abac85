package cloudinit

// A warm template's calendar timers (apt-daily, apt-daily-upgrade,
// dpkg-db-backup, fstrim, e2scrub_all...) were scheduled under the
// template's clock. A clone restored days later has its clock set forward
// past their times, and systemd starts every one of them at once: daily and
// weekly jobs in the clone's first second, beside its re-identification and
// the host's first connection, where a freshly booted VM runs none (a timer
// that never ran has nothing to catch up). The template stops them just
// before its memory is saved and lists them; the clone starts them again
// once its clock is its own, and they are scheduled from the clone's time.

// pausedTimersFile lists the timers a template stopped (under /run: in the
// saved memory, gone at the clone's next boot).
const pausedTimersFile = "run/fvm-paused-timers"

// PauseTimersCommand (bash, as the template's user, who has sudo) stops the
// guest's active calendar timers and lists them for the clones
// (ReidentifyScripts' rest starts them again). Monotonic timers (OnBootSec,
// OnUnitActiveSec) are left running: a restore does not move their clock.
const PauseTimersCommand = `t=$(systemctl show --property=Id,ActiveState,TimersCalendar '*.timer' 2> /dev/null |
  awk -F= '/^Id=/ {id=$2} /^ActiveState=/ {a=$2} /^TimersCalendar=./ {c=1}
    /^$/ {if (a == "active" && c) print id; id = ""; a = ""; c = 0}
    END {if (a == "active" && c) print id}')
[ -z "$t" ] || { printf '%s\n' $t | sudo -n tee /` + pausedTimersFile + ` > /dev/null && sudo -n systemctl stop $t; }`

// resumeTimers writes the rest's lines that start the timers the template
// stopped, the clone's clock set (the rest runs after it).
func resumeTimers(w func(string, ...any)) {
	w("# The calendar timers the template stopped before its memory was saved (see timers.go),")
	w("# started again now that the clock is the clone's: scheduled from now, none overdue.")
	w(`if [ -s "$R"/%s ]; then`, pausedTimersFile)
	w(`  mapfile -t timers < "$R"/%s; : > "$R"/%s  # emptied, not removed: no program to start`, pausedTimersFile, pausedTimersFile)
	w("  # A persistent timer runs at its start what it missed since its stamp (the template's or")
	w("  # the image's): its stamp is brought to now, so what came due while the template waited")
	w("  # does not run at once (a CI run across midnight saw dpkg-db-backup start in the clone).")
	w(`  stamps=(); for t in "${timers[@]}"; do [ ! -e "$R/var/lib/systemd/timers/stamp-$t" ] || stamps+=("$R/var/lib/systemd/timers/stamp-$t"); done`)
	w(`  [ ${#stamps[@]} -eq 0 ] || touch -c -- "${stamps[@]}" || true`)
	w(`  systemctl start --no-block -- "${timers[@]}" || true`)
	w("fi")
}
