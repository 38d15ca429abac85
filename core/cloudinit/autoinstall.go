package cloudinit

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/fvmhq/fvm/core/store"
)

// Ubuntu's server installer (subiquity) reads its answers from cloud-init user-data
// under a top-level autoinstall key (canonical-subiquity docs, "Providing autoinstall
// configuration"). Two facts shape what fvm writes:
//   - the installed system is configured by the autoinstall "user-data" section, which
//     subiquity hands to the installed system's cloud-init; with it no "identity"
//     section is needed. fvm puts there the same cloud-config a cloud image gets from
//     UserData, so the user, its keys and the pinned SSH host key are the same as for
//     any other VM and `fvm ssh` just works after the install;
//   - subiquity asks "Continue with autoinstall? (yes|no)" before touching the disks
//     unless the kernel command line has the word autoinstall (docs, "Zero-touch
//     deployment with autoinstall"). A seed cannot put it there: the qemu driver boots
//     the ISO's kernel directly with it for the install (see AutoinstallCmdline).

// AutoinstallCmdline is the kernel command line of an unattended install boot: autoinstall
// skips the confirmation; the console on the serial port makes the install visible in
// `fvm logs`. Arguments after "---" are copied into the installed system's boot entry.
const AutoinstallCmdline = "autoinstall console=tty0 console=ttyS0,115200 --- console=tty0 console=ttyS0,115200"

type autoinstallSSH struct {
	InstallServer bool `yaml:"install-server"`
	AllowPW       bool `yaml:"allow-pw"`
}

type autoinstallLayout struct {
	Name string `yaml:"name"`
}

type autoinstallStorage struct {
	Layout autoinstallLayout `yaml:"layout"`
}

type autoinstall struct {
	Version  int                `yaml:"version"`
	Storage  autoinstallStorage `yaml:"storage"`
	SSH      autoinstallSSH     `yaml:"ssh"`
	UserData *yaml.Node         `yaml:"user-data"` // the installed system's cloud-config
	// Power off rather than reboot: the install boot runs the ISO's kernel, so a
	// reboot would install again; the host boots the VM from its disk next.
	Shutdown string `yaml:"shutdown"`
}

// AutoinstallUserData renders the installer's #cloud-config: an autoinstall (version 1)
// that installs to the whole disk without LVM, installs the OpenSSH server, and
// configures the installed system with UserData(c).
func AutoinstallUserData(c Config) ([]byte, error) {
	inner, err := UserData(c)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(inner, &doc); err != nil || len(doc.Content) != 1 {
		return nil, fmt.Errorf("cloud-init seed: re-read user-data: %w", err)
	}
	return marshal("#cloud-config\n", struct {
		Autoinstall autoinstall `yaml:"autoinstall"`
	}{autoinstall{
		Version:  1,
		Storage:  autoinstallStorage{Layout: autoinstallLayout{Name: "direct"}},
		SSH:      autoinstallSSH{InstallServer: true, AllowPW: false},
		UserData: doc.Content[0],
		Shutdown: "poweroff",
	}})
}

// AutoinstallFiles renders the seed files of an unattended install: Files(c) with
// the autoinstall user-data.
func AutoinstallFiles(c Config) (map[string][]byte, error) {
	files, err := Files(c)
	if err != nil {
		return nil, err
	}
	if files[UserDataFile], err = AutoinstallUserData(c); err != nil {
		return nil, err
	}
	return files, nil
}

// WriteAutoinstallISO writes the autoinstall seed as a cidata ISO at path, as WriteISO does.
func WriteAutoinstallISO(path string, c Config) error {
	b, err := BuildAutoinstallISO(c)
	if err != nil {
		return err
	}
	return store.WriteFileAtomic(path, b, 0o600)
}

// BuildAutoinstallISO renders the autoinstall seed as a cidata ISO, as BuildISO does.
func BuildAutoinstallISO(c Config) ([]byte, error) {
	files, err := AutoinstallFiles(c)
	if err != nil {
		return nil, err
	}
	return buildSeed(files)
}
