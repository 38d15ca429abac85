package cloudinit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"
)

func testConfig(t *testing.T) Config {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		InstanceID:     NewInstanceID(),
		Hostname:       "web1",
		User:           "fvm",
		AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbBqQ0v5x0xv0GZq2bqg4x7c5pZ3nW9w7i5tZ0Z5x0x me@host\n"},
		HostKeyPrivate: string(pem.EncodeToMemory(blk)),
		HostKeyPublic:  strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))),
	}
}

func TestNewInstanceID(t *testing.T) {
	a, b := NewInstanceID(), NewInstanceID()
	if !regexp.MustCompile(`^i-[0-9a-f]{16}$`).MatchString(a) || a == b {
		t.Fatalf("ids %q %q: want distinct i-<16 hex>", a, b)
	}
}

func TestUserData(t *testing.T) {
	c := testConfig(t)
	b, err := UserData(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "#cloud-config\n") {
		t.Fatalf("user-data must start with #cloud-config:\n%s", b)
	}
	var got map[string]any
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatalf("user-data is not YAML: %v\n%s", err, b)
	}
	want := map[string]any{
		"hostname":         "web1",
		"manage_etc_hosts": true,
		"users": []any{map[string]any{
			"name":                "fvm",
			"sudo":                "ALL=(ALL) NOPASSWD:ALL",
			"shell":               "/bin/bash",
			"lock_passwd":         true,
			"ssh_authorized_keys": []any{strings.TrimSpace(c.AuthorizedKeys[0])},
		}},
		"disable_root":   true,
		"ssh_pwauth":     false,
		"ssh_deletekeys": true,
		"ssh_keys": map[string]any{
			"ed25519_private": c.HostKeyPrivate,
			"ed25519_public":  c.HostKeyPublic,
		},
		"growpart":      map[string]any{"mode": "auto", "devices": []any{"/"}},
		"resize_rootfs": true,
		"write_files": []any{map[string]any{
			"path": "/etc/ssh/sshd_config.d/60-fvm.conf", "permissions": "0644",
			"content": "# written by fvm: the host runs commands as sessions on one connection\nMaxSessions 64\n",
		}, map[string]any{"path": "/var/lib/systemd/linger/fvm", "permissions": "0644", "content": ""}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("user-data:\n%s\nparsed %#v\nwant %#v", b, got, want)
	}
	// The private key must survive byte for byte, final newline included, for sshd to load it.
	if !strings.HasSuffix(got["ssh_keys"].(map[string]any)["ed25519_private"].(string), "-----END OPENSSH PRIVATE KEY-----\n") {
		t.Fatal("private key lost its final newline")
	}
}

func TestUserDataRejectsIncompleteConfig(t *testing.T) {
	c := testConfig(t)
	c.AuthorizedKeys = nil
	c.Hostname = ""
	_, err := UserData(c)
	if err == nil || !strings.Contains(err.Error(), "hostname is empty") || !strings.Contains(err.Error(), "--ssh-key") {
		t.Fatalf("err = %v", err)
	}
	c = testConfig(t)
	c.AuthorizedKeys = []string{"ssh-ed25519 AAAA\nssh-rsa BBBB"}
	if _, err := UserData(c); err == nil {
		t.Fatal("multi-line key accepted")
	}
}

func TestMetaAndNetworkConfig(t *testing.T) {
	c := testConfig(t)
	b, err := MetaData(c)
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	if err := yaml.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	if md["instance-id"] != c.InstanceID || md["local-hostname"] != "web1" || len(md) != 2 {
		t.Fatalf("meta-data: %s", b)
	}

	for _, tc := range []struct{ mac, want string }{{"", DefaultMAC}, {"52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"}} {
		c.MACAddress = tc.mac
		b, err = NetworkConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		var nc map[string]any
		if err := yaml.Unmarshal(b, &nc); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"version": 2, "ethernets": map[string]any{"eth0": map[string]any{
			"match": map[string]any{"macaddress": tc.want}, "dhcp4": true}}}
		if !reflect.DeepEqual(nc, want) {
			t.Fatalf("network-config:\n%s", b)
		}
	}
}

func TestWriteISOReadBack(t *testing.T) {
	c := testConfig(t)
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := WriteISO(path, c); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (the seed holds a private key)", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("leftovers beside the seed: %v", entries)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs, err := iso9660.Read(file.New(f, true), st.Size(), 0, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if l := strings.TrimRight(fs.Label(), " \x00"); l != VolumeLabel {
		t.Errorf("label %q, want %q", l, VolumeLabel)
	}
	want, _ := Files(c)
	init, _ := InitFiles(c)
	for name, content := range init {
		want[name] = content
	}
	for name, content := range want {
		r, err := fs.OpenFile("/"+name, os.O_RDONLY)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(got) != string(content) {
			t.Errorf("%s differs:\n%s\nwant\n%s", name, got, content)
		}
	}
}

func TestWriteISOReplacesAndFailsClean(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seed.iso")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := testConfig(t)
	bad.User = ""
	if err := WriteISO(path, bad); err == nil {
		t.Fatal("invalid config accepted")
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatal("a failed write touched the existing seed")
	}
	if err := WriteISO(path, testConfig(t)); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("leftovers: %v", entries)
	}
}

// TestISOWithXorriso checks the image with an independent reader, as the guest's
// kernel would see it: Rock Ridge names and the volume id.
func TestISOWithXorriso(t *testing.T) {
	x, err := exec.LookPath("xorriso")
	if err != nil {
		t.Skip("xorriso not installed (apt-get install -y xorriso)")
	}
	path := filepath.Join(t.TempDir(), "seed.iso")
	c := testConfig(t)
	if err := WriteISO(path, c); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(x, "-indev", path, "-pvd_info", "-find", "/", "-type", "f").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	s := string(out)
	if !regexp.MustCompile(`Volume Id\s*:\s*cidata`).MatchString(s) {
		t.Errorf("volume id not cidata:\n%s", s)
	}
	for _, name := range []string{UserDataFile, MetaDataFile, NetworkConfigFile, InitDir + "/ssh_host_ed25519_key.pub", InitDir + "/boot.sh"} {
		if !strings.Contains(s, "'/"+name+"'") {
			t.Errorf("%s not listed:\n%s", name, s)
		}
	}
	out, err = exec.Command(x, "-indev", path, "-osirrox", "on", "-extract", "/"+UserDataFile, filepath.Join(t.TempDir(), "ud")).CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso extract: %v\n%s", err, out)
	}
}

// TestUserDataRosetta: --rosetta mounts the share and registers it for
// x86-64 ELF programs with binfmt_misc at every boot; without it, none of that.
func TestUserDataRosetta(t *testing.T) {
	c := testConfig(t)
	plain, err := UserData(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(plain), "rosetta") {
		t.Fatalf("user-data without --rosetta mentions it:\n%s", plain)
	}
	c.Rosetta = true
	b, err := UserData(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Bootcmd [][]string `yaml:"bootcmd"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(doc.Bootcmd) != 1 || len(doc.Bootcmd[0]) != 3 || doc.Bootcmd[0][0] != "sh" {
		t.Fatalf("bootcmd %q", doc.Bootcmd)
	}
	cmd := doc.Bootcmd[0][2]
	for _, want := range []string{"mount -t virtiofs -o ro rosetta /mnt/rosetta", "[ -e /proc/sys/fs/binfmt_misc/rosetta ] ||", "> /proc/sys/fs/binfmt_misc/register"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("bootcmd lacks %q:\n%s", want, cmd)
		}
	}
	// What the guest's shell writes to register, run by a real shell here.
	i := strings.Index(cmd, "printf ")
	j := strings.Index(cmd, " > /proc/sys/fs/binfmt_misc/register")
	if i < 0 || j < i {
		t.Fatalf("no registration in %s", cmd)
	}
	out, err := exec.Command("sh", "-c", cmd[i:j]).Output()
	if err != nil {
		t.Fatal(err)
	}
	reg := string(out)
	if !strings.HasSuffix(reg, "\n") || strings.Count(reg, "\n") != 1 {
		t.Fatalf("registration %q: want one line", reg)
	}
	// name, type M(agic), offset, magic, mask, interpreter, flags
	fields := strings.Split(strings.TrimSpace(reg), ":")
	if len(fields) != 8 || fields[1] != "rosetta" || fields[2] != "M" || fields[6] != "/mnt/rosetta/rosetta" || fields[7] != "CF" {
		t.Fatalf("binfmt registration %q", reg)
	}
	magic, mask := unescapeHex(t, fields[4]), unescapeHex(t, fields[5])
	// An ELF64, little-endian, x86-64 (e_machine 0x3e) executable's header matches.
	elf := []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x3e, 0}
	if len(magic) != 20 || len(mask) != 20 {
		t.Fatalf("magic %d bytes, mask %d: want 20", len(magic), len(mask))
	}
	for i := range elf {
		if elf[i]&mask[i] != magic[i]&mask[i] {
			t.Fatalf("byte %d of an x86-64 ELF header does not match", i)
		}
	}
	arm := append([]byte(nil), elf...)
	arm[18] = 0xb7 // EM_AARCH64: never sent to Rosetta
	if arm[18]&mask[18] == magic[18]&mask[18] {
		t.Fatal("an arm64 ELF matches the Rosetta registration")
	}
}

func unescapeHex(t *testing.T, s string) []byte {
	t.Helper()
	var out []byte
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], `\x`) && i+4 <= len(s) {
			var b byte
			if _, err := fmt.Sscanf(s[i+2:i+4], "%02x", &b); err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			out = append(out, b)
			i += 4
			continue
		}
		out = append(out, s[i])
		i++
	}
	return out
}

// TestGuestUIDMatchesHostUser: the guest's user gets the host user's uid, so
// shared folders (owners passed through) are its own; root and system
// accounts keep the guest's default.
func TestGuestUIDMatchesHostUser(t *testing.T) {
	for host, want := range map[int]int{501: 501, 1000: 1000, 1500: 1500, 0: 0, 33: 0, 499: 0, 65534: 0} {
		if got := GuestUID(host); got != want {
			t.Errorf("GuestUID(%d) = %d, want %d", host, got, want)
		}
	}
	c := testConfig(t)
	c.UID = 501
	ud, err := UserData(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ud), "    uid: 501\n") {
		t.Errorf("user-data lacks the uid:\n%s", ud)
	}
	c.UID = 0
	if ud, _ := UserData(c); strings.Contains(string(ud), "uid:") {
		t.Errorf("uid 0 written:\n%s", ud)
	}
}
