package cloudinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestInitFiles(t *testing.T) {
	c := testConfig(t)
	c.UID = 501
	c.MACAddress = "52:54:00:AB:CD:EF"
	c.Mounts = []Mount{{Tag: "share0", GuestPath: "/mnt/data", ReadOnly: true}}
	files, err := InitFiles(c)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return string(files[InitDir+"/"+name]) }
	for name, want := range map[string]string{
		"instance-id": c.InstanceID + "\n",
		"hostname":    "web1\n",
		"user":        "fvm\n",
		"uid":         "501\n",
		"mac":         "52:54:00:ab:cd:ef\n",
		"sshd_config": SSHDConfig + "PasswordAuthentication no\n",
	} {
		if got := get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := get("authorized_keys"); got != strings.TrimSpace(c.AuthorizedKeys[0])+"\n" {
		t.Errorf("authorized_keys = %q", got)
	}
	if !strings.HasSuffix(get("ssh_host_ed25519_key"), "-----END OPENSSH PRIVATE KEY-----\n") {
		t.Errorf("host key not a whole PEM: %q", get("ssh_host_ed25519_key"))
	}
	if _, ok := files[InitDir+"/new-machine-id"]; ok {
		t.Error("new-machine-id for a VM of its own disk")
	}
	c.NewMachineID, c.UID, c.MACAddress = true, 0, ""
	files, err = InitFiles(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files[InitDir+"/new-machine-id"]; !ok {
		t.Error("no new-machine-id for a clone")
	}
	if get := string(files[InitDir+"/uid"]); get != "\n" {
		t.Errorf("uid without one = %q, want an empty line", get)
	}
	if get := string(files[InitDir+"/mac"]); get != DefaultMAC+"\n" {
		t.Errorf("mac without one = %q", get)
	}
	c.User = ""
	if _, err := InitFiles(c); err == nil {
		t.Error("a config without a user accepted")
	}
}

// TestInitBootScriptRuns runs the every-boot script with mount and mkdir
// replaced by fakes: each share's command line arrives whole,
// and a failing command is reported without stopping the next.
func TestInitBootScriptRuns(t *testing.T) {
	c := testConfig(t)
	c.Mounts = []Mount{{Tag: "share0", GuestPath: "/mnt/data", ReadOnly: true}, {Tag: "share1", GuestPath: "/srv"}}
	files, err := InitFiles(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	fake := "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> " + log + "\n[ \"$1\" != -q ] || exit 1\ncase \"$*\" in *share0*) exit 1;; esac\n"
	for _, p := range []string{"mount", "mkdir", "mountpoint"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(dir, "boot.sh")
	if err := os.WriteFile(script, files[InitDir+"/boot.sh"], 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", script)
	cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("boot.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "fvm-init: boot command 1 failed") || strings.Contains(string(out), "command 2 failed") {
		t.Errorf("output %q: want command 1 (share0) reported failed, command 2 not", out)
	}
	b, _ := os.ReadFile(log)
	for _, want := range []string{"mkdir -p /mnt/data", "mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,cache=mmap,ro share0 /mnt/data", "mount -t virtiofs -o defaults share1 /srv"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("no %q in the commands run:\n%s", want, b)
		}
	}
}

func TestWaitCommandParses(t *testing.T) {
	if out, err := exec.Command("bash", "-n", "-c", WaitCommand).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
}
