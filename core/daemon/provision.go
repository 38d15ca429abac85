package daemon

import (
	"fmt"
	"os"

	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// provision writes what makes a fresh VM reachable: its SSH host key (pinned from
// now on), the known_hosts file for plain ssh and its instance id, and returns
// its cloud-init seed for the driver to place, whose network config names the
// NIC by mac ("" for cloudinit.DefaultMAC) and whose guest serves sshd on the
// virtio-serial port sshPort too ("" for none).
func provision(l store.Layout, inst *store.Instance, mac, sshPort string) ([]byte, error) {
	_, userKey, err := sshx.LoadOrCreateKey(l.UserKey())
	if err != nil {
		return nil, fmt.Errorf("fvm ssh key %s: %w", l.UserKey(), err)
	}
	priv, pub, err := sshx.GenerateEd25519()
	if err != nil {
		return nil, err
	}
	if err := store.WriteFileAtomic(inst.Path(store.HostKeyFile), priv, 0o600); err != nil {
		return nil, err
	}
	if err := store.WriteFileAtomic(inst.Path(store.HostKeyPubFile), []byte(pub+"\n"), store.PrivateFile); err != nil {
		return nil, err
	}
	line := sshx.KnownHostsLine(sshx.HostAlias(inst.Spec.Name), pub)
	if err := store.WriteFileAtomic(inst.Path(store.KnownHostsFile), []byte(line+"\n"), store.PrivateFile); err != nil {
		return nil, err
	}
	build := cloudinit.BuildISO
	if inst.Spec.AutoInstall { // the same settings, as answers to Ubuntu's installer
		build = cloudinit.BuildAutoinstallISO
	}
	id := cloudinit.NewInstanceID()
	if err := store.WriteFileAtomic(inst.Path(store.InstanceIDFile), []byte(id+"\n"), store.PrivateFile); err != nil {
		return nil, err
	}
	return build(cloudinit.Config{
		InstanceID:     id,
		Hostname:       inst.Spec.Name,
		User:           inst.Spec.User,
		UID:            cloudinit.GuestUID(os.Getuid()), // shares are the guest user's own
		AuthorizedKeys: cloudinit.AuthorizedKeys(userKey, inst.Spec.SSHKeys),
		HostKeyPrivate: string(priv),
		HostKeyPublic:  pub,
		Mounts:         seedMounts(inst.Spec.Mounts),
		MACAddress:     mac,
		SSHPort:        sshPort,
		Rosetta:        inst.Spec.Rosetta,
		NewMachineID:   inst.Spec.Warm != "", // a copy of another VM's disk (a clone)
	})
}

func seedMounts(ms []vm.Mount) []cloudinit.Mount {
	var out []cloudinit.Mount
	for i, m := range ms {
		out = append(out, cloudinit.Mount{Tag: vm.ShareTag(i), GuestPath: m.GuestPath, ReadOnly: m.ReadOnly})
	}
	return out
}
