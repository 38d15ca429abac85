package cloudinit

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testIdentity(t *testing.T) Identity {
	c := testConfig(t)
	return Identity{
		Hostname: "clone1", User: "fvm", AuthorizedKeys: c.AuthorizedKeys,
		HostKeyPrivate: c.HostKeyPrivate, HostKeyPublic: c.HostKeyPublic,
		MachineID: strings.Repeat("ab", 16), InstanceID: "i-0011223344556677", OldInstanceID: "i-8899aabbccddeeff",
		Entropy: bytes.Repeat([]byte{7}, 64), Now: time.Unix(1764600000, 123456789), SetClock: true, GrowDisk: true,
	}
}

func TestReidentifyScript(t *testing.T) {
	id := testIdentity(t)
	r, err := ReidentifyScripts(id)
	if err != nil {
		t.Fatal(err)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		for _, s := range []string{r.First, r.Rest, r.Script()} {
			c := exec.Command(bash, "-n")
			c.Stdin = strings.NewReader(s)
			if out, err := c.CombinedOutput(); err != nil {
				t.Fatalf("bash -n: %v: %s\n%s", err, out, s)
			}
		}
	}
	for _, want := range []string{
		"date -u -s @1764600000.123456789",
		"growpart", "resize2fs",
		"systemctl restart --no-block systemd-journald", // where the journal could not be moved
		"agetty --reload",
		`systemctl try-restart --no-block "getty@*.service" "serial-getty@*.service"`, // where agetty cannot reload
	} {
		if !strings.Contains(r.Rest, want) && !strings.Contains(r.First, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	// A listening sshd is signalled (or else restarted) in the first part,
	// after the new key is in place.
	key := strings.Index(r.First, "ssh_host_ed25519_key.pub")
	for _, tell := range []string{`kill -HUP "$pid"`, "systemctl try-restart --no-block '[s]sh.service' '[s]shd.service'"} {
		if i := strings.Index(r.First, tell); i < 0 || i < key {
			t.Errorf("the first part does not run %s after the new key is in place", tell)
		}
	}
	if strings.Index(r.First, "date -u -s") > strings.Index(r.First, "ssh_host") {
		t.Error("the clock is set after other work")
	}
}

// TestReidentifyScriptRuns runs both parts on a directory tree laid out as a
// template's and checks what they leave.
func TestReidentifyScriptRuns(t *testing.T) {
	bash, me, id := runnableIdentity(t)
	root := t.TempDir()
	home := filepath.Join(root, me.HomeDir)
	files := map[string]string{
		"etc/ssh/ssh_host_ed25519_key": "old", "etc/ssh/ssh_host_ed25519_key.pub": "old",
		"etc/ssh/ssh_host_rsa_key": "old", "etc/ssh/ssh_host_rsa_key.pub": "old", "etc/ssh/sshd_config": "keep",
		"etc/hostname": "fvm-warm\n", "proc/sys/kernel/hostname": "fvm-warm\n", "etc/machine-id": oldMachineID + "\n",
		"var/lib/dbus/machine-id": "0000\n", "run/.keep": "", "var/log/journal/" + oldMachineID + "/system.journal": "entries", "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 fvm-warm.lan fvm-warm\n",
		"dev/urandom": "", "var/lib/cloud/instances/" + id.OldInstanceID + "/obj.pkl": "x",
		"var/lib/cloud/instances/" + id.OldInstanceID + "/sem/config_x": "x", "var/lib/cloud/data/instance-id": "old\n",
		"var/lib/fvm/instance-id": "old\n",
	}
	writeTree(t, root, files)
	if err := os.Symlink("/var/lib/cloud/instances/"+id.OldInstanceID, filepath.Join(root, "var/lib/cloud/instance")); err != nil {
		t.Fatal(err)
	}
	r, err := reidentifyScripts(id, root, false)
	if err != nil {
		t.Fatal(err)
	}
	run := func(script string) string {
		c := exec.Command(bash, "-s")
		c.Stdin = strings.NewReader(script)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return string(out)
	}
	if out := run(r.First); strings.TrimSpace(out) != "keyed" {
		t.Errorf("first part printed %q", out)
	}
	if err := ReadBack(run(r.Rest), id.Hostname, id.MachineID); err != nil {
		t.Error(err)
	}
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return err.Error()
		}
		return string(b)
	}
	inst := "var/lib/cloud/instances/" + id.InstanceID
	for f, want := range map[string]string{
		"etc/ssh/ssh_host_ed25519_key": id.HostKeyPrivate, "etc/ssh/ssh_host_ed25519_key.pub": strings.TrimSpace(id.HostKeyPublic) + "\n",
		"etc/ssh/sshd_config": "keep", "etc/hostname": "clone1\n", "proc/sys/kernel/hostname": "clone1",
		"etc/machine-id": id.MachineID + "\n", "var/lib/dbus/machine-id": id.MachineID + "\n",
		"etc/hosts": "127.0.0.1 localhost\n127.0.1.1 clone1.lan clone1\n", "dev/urandom": string(id.Entropy),
		strings.TrimPrefix(home, root+"/") + "/.ssh/authorized_keys": strings.Join(trimAll(id.AuthorizedKeys), "\n") + "\n",
		"var/lib/cloud/data/instance-id":                             id.InstanceID + "\n", "var/lib/cloud/data/previous-instance-id": id.InstanceID + "\n",
		inst + "/sem/config_x": "x", inst + "/sem/" + machineIDSemaphore: fmt.Sprintf("0\t%d\n", id.Now.Unix()),
		"var/lib/fvm/instance-id": id.InstanceID + "\n",
	} {
		if got := read(f); got != want {
			t.Errorf("%s: %q, want %q", f, got, want)
		}
	}
	for _, f := range []string{"etc/ssh/ssh_host_rsa_key", "etc/ssh/ssh_host_rsa_key.pub", inst + "/obj.pkl", "var/lib/cloud/instances/" + id.OldInstanceID} {
		if _, err := os.Lstat(filepath.Join(root, f)); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", f, err)
		}
	}
	journalMoved(t, root, oldMachineID, id.MachineID)
	if l, _ := os.Readlink(filepath.Join(root, "var/lib/cloud/instance")); l != "/var/lib/cloud/instances/"+id.InstanceID {
		t.Errorf("instance links to %q", l)
	}
	if st, err := os.Stat(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the private host key: %v %v", st.Mode(), err)
	}
	// Run again (a retry after a failure): the same outcome.
	run(r.First)
	if err := ReadBack(run(r.Rest), id.Hostname, id.MachineID); err != nil {
		t.Error(err)
	}
	journalMoved(t, root, oldMachineID, id.MachineID)
}

// oldMachineID is the template's machine id in the trees the script runs on.
const oldMachineID = "0123456789abcdef0123456789abcdef"

// journalMoved checks that the template's journal directory took the clone's
// machine id and that the old name links to it.
func journalMoved(t *testing.T, root, old, new string) {
	t.Helper()
	dir := filepath.Join(root, "var/log/journal")
	if b, err := os.ReadFile(filepath.Join(dir, new, "system.journal")); err != nil || string(b) != "entries" {
		t.Errorf("the journal under the clone's machine id: %q %v", b, err)
	}
	if st, err := os.Lstat(filepath.Join(dir, new)); err != nil || !st.IsDir() {
		t.Errorf("the clone's journal directory is not a directory: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(dir, old)); err != nil || l != new {
		t.Errorf("the template's journal directory links to %q (%v), want %s", l, err, new)
	}
}

func TestReidentifyRefusesBadValues(t *testing.T) {
	for name, edit := range map[string]func(*Identity){
		"hostname with a shell word": func(id *Identity) { id.Hostname = "x; rm -rf /" },
		"user":                       func(id *Identity) { id.User = "root$(id)" },
		"machine id":                 func(id *Identity) { id.MachineID = "xyz" },
		"instance id":                func(id *Identity) { id.InstanceID = "../../etc" },
		"key on two lines":           func(id *Identity) { id.AuthorizedKeys = []string{"ssh-ed25519 AAAA\nrm -rf /"} },
		"entropy":                    func(id *Identity) { id.Entropy = nil },
		"rsa host key":               func(id *Identity) { id.HostKeyPublic = "ssh-rsa AAAA" },
		"template hostname":          func(id *Identity) { id.OldHostname = "web1/../x" },
	} {
		id := testIdentity(t)
		edit(&id)
		if _, err := ReidentifyScript(id); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestUserDataMounts(t *testing.T) {
	c := testConfig(t)
	c.Mounts = []Mount{{Tag: "fvm0", GuestPath: "/src"}, {Tag: "fvm1", GuestPath: "/data", ReadOnly: true}}
	b, err := UserData(c)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"bootcmd:", "mount -t virtiofs -o defaults fvm0 /src", "mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,cache=mmap,ro fvm1 /data", "mkdir -p /data"} {
		if !strings.Contains(s, want) {
			t.Errorf("user-data lacks %q:\n%s", want, s)
		}
	}
	c.Mounts = nil
	if b, _ := UserData(c); strings.Contains(string(b), "bootcmd") {
		t.Error("bootcmd without mounts")
	}
}

// TestReidentifyFromNamedSnapshot: a clone of a VM's snapshot replaces that
// VM's hostname in /etc/hosts, not the warm template's.
func TestReidentifyFromNamedSnapshot(t *testing.T) {
	id := testIdentity(t)
	id.OldHostname = "web1"
	s, err := ReidentifyScript(id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, `s/\bweb1\b/clone1/g`) || strings.Contains(s, TemplateHostname) {
		t.Errorf("the hosts edit of a named snapshot's clone:\n%s", s)
	}
}

// TestUserDataNewMachineID: a clone booted cold gets its own machine id once.
func TestUserDataNewMachineID(t *testing.T) {
	c := testConfig(t)
	c.NewMachineID = true
	b, err := UserData(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "cloud-init-per") || !strings.Contains(string(b), "systemd-machine-id-setup") {
		t.Errorf("user-data of a clone:\n%s", b)
	}
	c.NewMachineID = false
	if b, _ := UserData(c); strings.Contains(string(b), "machine-id") {
		t.Error("a plain VM's seed replaces its machine id")
	}
}

// TestEscapeBytesRoundTrip: what the script writes is exactly the bytes given,
// quotes, percent signs, backslashes and NUL included.
func TestEscapeBytesRoundTrip(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	in := []byte("a'b\"c%s%%d\\x41\x00\xff\n-$(reboot)`id`")
	for i := 0; i < 256; i++ {
		in = append(in, byte(i))
	}
	out, err := exec.Command(bash, "-c", "printf '"+escapeBytes(in)+"'").Output()
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("bash wrote %q (%v), want %q", out, err, in)
	}
}

// A re-identified clone's machine id survives its next cold boot: the script
// marks the seed's once-per-instance replacement done for the clone's
// instance, under the name cloud-init-per gives it ('-' as '_').
func TestReidentifyMarksMachineIDDone(t *testing.T) {
	id := testIdentity(t)
	s, err := ReidentifyScript(id)
	if err != nil {
		t.Fatal(err)
	}
	if want := "instances/" + id.InstanceID + "/sem/" + machineIDSemaphore; !strings.Contains(s, want) {
		t.Errorf("the script does not mark %s:\n%s", want, s)
	}
	if got := "bootper." + strings.ReplaceAll(machineIDOnce, "-", "_") + ".instance"; got != machineIDSemaphore {
		t.Errorf("cloud-init-per names %q's semaphore %s, not %s", machineIDOnce, got, machineIDSemaphore)
	}
}

// TestReidentifyWithoutCloudInit: a template that fvm-init provisioned has
// no cloud-init instance; the script carries on fvm-init's instance id.
func TestReidentifyWithoutCloudInit(t *testing.T) {
	bash, _, id := runnableIdentity(t)
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"etc/hostname": "fvm-warm\n", "proc/sys/kernel/hostname": "fvm-warm\n", "etc/machine-id": "0000\n",
		"etc/hosts": "127.0.1.1 fvm-warm fvm-warm\n", "dev/urandom": "", "var/lib/fvm/instance-id": id.OldInstanceID + "\n",
		"etc/ssh/ssh_host_ed25519_key": "old",
	})
	r, err := reidentifyScripts(id, root, false)
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(bash, "-s")
	c.Stdin = strings.NewReader(r.Script())
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "var/lib/fvm/instance-id")); string(b) != id.InstanceID+"\n" {
		t.Errorf("fvm-init's instance id %q, want %q", b, id.InstanceID)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/cloud")); !os.IsNotExist(err) {
		t.Errorf("cloud-init state made for a template without it (%v)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hosts")); string(b) != "127.0.1.1 clone1 clone1\n" {
		t.Errorf("/etc/hosts: %q", b)
	}
}

// runnableIdentity skips a test that cannot run the script here (no bash, a
// user name it refuses) and returns bash, the user and an identity for it.
func runnableIdentity(t *testing.T) (string, *user.User, Identity) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	me, err := user.Current()
	if err != nil || !login.MatchString(me.Username) {
		t.Skip("no user name the script accepts")
	}
	id := testIdentity(t)
	id.User, id.SetClock, id.GrowDisk = me.Username, false, false
	return bash, me, id
}

// writeTree lays files (path under root: content) out under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for f, content := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPauseAndResumeTimers: the template's command stops and lists the
// active calendar timers only (a fake systemctl answers as systemd does);
// the rest's lines start exactly those again and empty the list.
func TestPauseAndResumeTimers(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	log := filepath.Join(dir, "calls")
	show := "Id=apt-daily.timer\nActiveState=active\nTimersCalendar={ OnCalendar=*-*-* 06,18:00:00 ; next_elapse=n/a }\n\n" +
		"Id=systemd-tmpfiles-clean.timer\nActiveState=active\nTimersCalendar=\n\n" +
		"Id=fstrim.timer\nTimersCalendar={ OnCalendar=Mon *-*-* 00:00:00 ; next_elapse=n/a }\nActiveState=active\n\n" +
		"Id=old.timer\nActiveState=inactive\nTimersCalendar={ OnCalendar=daily ; next_elapse=n/a }\n"
	os.WriteFile(filepath.Join(dir, "show"), []byte(show), 0o644)
	os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\nif [ \"$1\" = show ]; then cat "+dir+"/show; else echo \"$*\" >> "+log+"; fi\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "sudo"), []byte("#!/bin/sh\n[ \"$1\" != -n ] || shift\nexec \"$@\"\n"), 0o755)
	list := filepath.Join(dir, pausedTimersFile)
	os.MkdirAll(filepath.Dir(list), 0o755)
	pause := strings.ReplaceAll(PauseTimersCommand, "/"+pausedTimersFile, list)
	cmd := exec.Command("bash", "-c", pause)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pause: %v: %s", err, out)
	}
	if b, _ := os.ReadFile(list); string(b) != "apt-daily.timer\nfstrim.timer\n" {
		t.Errorf("listed %q, want the two active calendar timers", b)
	}
	// apt-daily ran in the image, a day before: its stamp comes to now.
	stamps := filepath.Join(dir, "var/lib/systemd/timers")
	os.MkdirAll(stamps, 0o755)
	old := time.Now().Add(-26 * time.Hour)
	os.WriteFile(filepath.Join(stamps, "stamp-apt-daily.timer"), nil, 0o644)
	os.Chtimes(filepath.Join(stamps, "stamp-apt-daily.timer"), old, old)
	var s strings.Builder
	resumeTimers(func(f string, a ...any) { fmt.Fprintf(&s, f+"\n", a...) })
	cmd = exec.Command("bash", "-c", "set -eu; R="+dir+"\n"+s.String())
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("resume: %v: %s", err, out)
	}
	if b, _ := os.ReadFile(log); string(b) != "stop apt-daily.timer fstrim.timer\nstart --no-block -- apt-daily.timer fstrim.timer\n" {
		t.Errorf("systemctl called as:\n%s", b)
	}
	if b, err := os.ReadFile(list); err != nil || len(b) != 0 {
		t.Errorf("the list stayed: %q %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(stamps, "stamp-apt-daily.timer")); err != nil || time.Since(st.ModTime()) > time.Minute {
		t.Errorf("apt-daily's stamp was not brought to now (%v): it would catch up at once", err)
	}
	if _, err := os.Stat(filepath.Join(stamps, "stamp-fstrim.timer")); err == nil {
		t.Error("a stamp was made for a timer that had none")
	}
}

// A spare clone keeps its calendar timers paused until its handover, whose
// script names it, starts them and reads back what it is.
func TestSpareRename(t *testing.T) {
	_, _, id := runnableIdentity(t)
	id.Spare = true
	r, err := reidentifyScripts(id, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.Rest, pausedTimersFile) {
		t.Error("a spare's rest starts its paused timers")
	}
	id.Spare = false
	if r, _ = reidentifyScripts(id, "", true); !strings.Contains(r.Rest, pausedTimersFile) {
		t.Error("a clone's rest does not start its paused timers")
	}
	if s, _ := RenameScript("web1", "spare-0a1b"); !strings.Contains(s, pausedTimersFile) || !strings.Contains(s, "agetty --reload") {
		t.Errorf("the handover starts no timers or prints no prompts:\n%s", s)
	}
	root := t.TempDir()
	writeTree(t, root, map[string]string{"etc/hostname": "spare-0a1b\n", "proc/sys/kernel/hostname": "spare-0a1b\n",
		"etc/machine-id": oldMachineID + "\n", "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 spare-0a1b.lan spare-0a1b\n"})
	s, err := renameScript("web1", "spare-0a1b", root, false)
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command("bash", "-s")
	c.Stdin = strings.NewReader(s)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := ReadBack(string(out), "web1", oldMachineID); err != nil {
		t.Error(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hosts")); string(b) != "127.0.0.1 localhost\n127.0.1.1 web1.lan web1\n" {
		t.Errorf("/etc/hosts: %q", b)
	}
	for _, bad := range [][2]string{{"Web1", "spare-0a1b"}, {"web1", "spare;rm"}, {"", "x"}} {
		if _, err := RenameScript(bad[0], bad[1]); err == nil {
			t.Errorf("RenameScript(%q, %q) took it", bad[0], bad[1])
		}
	}
}
