package cloudinit

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"go.yaml.in/yaml/v3"
)

// TestAutoinstallSeedReadBack writes the seed, reads user-data back from the ISO as
// the installer would, and checks the keys subiquity and the installed system use.
func TestAutoinstallSeedReadBack(t *testing.T) {
	c := testConfig(t)
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := WriteAutoinstallISO(path, c); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (the seed holds a private key)", st.Mode().Perm())
	}
	fs, err := iso9660.Read(file.New(f, true), st.Size(), 0, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if l := strings.TrimRight(fs.Label(), " \x00"); l != VolumeLabel {
		t.Errorf("label %q, want %q", l, VolumeLabel)
	}
	read := func(name string) []byte {
		r, err := fs.OpenFile("/"+name, os.O_RDONLY)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return b
	}
	ud := read(UserDataFile)
	if !strings.HasPrefix(string(ud), "#cloud-config\n") {
		t.Fatalf("user-data must start with #cloud-config (cloud-init ignores it otherwise):\n%s", ud)
	}
	var doc struct {
		Autoinstall struct {
			Version int `yaml:"version"`
			Storage struct {
				Layout struct {
					Name string `yaml:"name"`
				} `yaml:"layout"`
			} `yaml:"storage"`
			SSH struct {
				InstallServer bool `yaml:"install-server"`
				AllowPW       bool `yaml:"allow-pw"`
			} `yaml:"ssh"`
			Shutdown string         `yaml:"shutdown"`
			UserData map[string]any `yaml:"user-data"`
		} `yaml:"autoinstall"`
	}
	if err := yaml.Unmarshal(ud, &doc); err != nil {
		t.Fatalf("user-data is not YAML: %v\n%s", err, ud)
	}
	ai := doc.Autoinstall
	if ai.Version != 1 || ai.Storage.Layout.Name != "direct" || !ai.SSH.InstallServer || ai.SSH.AllowPW || ai.Shutdown != "poweroff" {
		t.Errorf("autoinstall section: %+v\n%s", ai, ud)
	}
	// The installed system gets exactly the cloud-config of a cloud image: same user,
	// keys and pinned host key.
	var want map[string]any
	plain, _ := UserData(c)
	if err := yaml.Unmarshal(plain, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ai.UserData, want) {
		t.Errorf("autoinstall user-data:\n%#v\nwant\n%#v", ai.UserData, want)
	}
	users := ai.UserData["users"].([]any)
	u := users[0].(map[string]any)
	if u["name"] != "fvm" || !reflect.DeepEqual(u["ssh_authorized_keys"], []any{strings.TrimSpace(c.AuthorizedKeys[0])}) {
		t.Errorf("user: %#v", u)
	}
	if ai.UserData["ssh_keys"].(map[string]any)["ed25519_public"] != c.HostKeyPublic {
		t.Error("host key not pinned in the installed system's user-data")
	}
	var md map[string]any
	if err := yaml.Unmarshal(read(MetaDataFile), &md); err != nil || md["instance-id"] != c.InstanceID {
		t.Errorf("meta-data: %v %v", md, err)
	}
	read(NetworkConfigFile)
}

func TestAutoinstallRejectsIncompleteConfig(t *testing.T) {
	c := testConfig(t)
	c.AuthorizedKeys = nil
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := WriteAutoinstallISO(path, c); err == nil || !strings.Contains(err.Error(), "--ssh-key") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("a failed write left a seed")
	}
}

func TestAutoinstallCmdline(t *testing.T) {
	before, after, ok := strings.Cut(AutoinstallCmdline, " --- ")
	if !ok || !strings.Contains(" "+before+" ", " autoinstall ") || strings.Contains(after, "autoinstall") {
		t.Fatalf("cmdline %q: autoinstall must be before --- (and not copied to the installed system)", AutoinstallCmdline)
	}
}
