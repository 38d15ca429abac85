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
	id := cloudinit.NewInstanceID()
	if err := store.WriteFileAtomic(inst.Path(store.InstanceIDFile), []byte(id+"\n"), store.PrivateFile); err != nil {
		return nil, err
	}
	return seed(l, inst, priv, pub, id, mac, sshPort)
}

// reprovision writes again what names the VM (its known_hosts line and its
// seed's hostname) with the key and instance id it has: a spare clone handed
// over under its VM's name. The seed is placed where the driver keeps it.
func reprovision(l store.Layout, inst *store.Instance, mac, sshPort string) error {
	priv, pub, instanceID, err := inst.ReadIdentity()
	if err != nil {
		return err
	}
	iso, err := seed(l, inst, priv, pub, instanceID, mac, sshPort)
	if err != nil {
		return err
	}
	if _, err := os.Stat(inst.Path(store.SeedFile)); err != nil {
		return nil // a driver that keeps its seed elsewhere made it from the spec
	}
	return store.WriteFileAtomic(inst.Path(store.SeedFile), iso, 0o600)
}

// seed writes the VM's known_hosts line and returns its cloud-init seed.
func seed(l store.Layout, inst *store.Instance, priv []byte, pub, id, mac, sshPort string) ([]byte, error) {
	_, userKey, err := sshx.LoadOrCreateKey(l.UserKey())
	if err != nil {
		return nil, fmt.Errorf("fvm ssh key %s: %w", l.UserKey(), err)
	}
	line := sshx.KnownHostsLine(sshx.HostAlias(inst.Spec.Name), pub)
	if err := store.WriteFileAtomic(inst.Path(store.KnownHostsFile), []byte(line+"\n"), store.PrivateFile); err != nil {
		return nil, err
	}
	build := cloudinit.BuildISO
	if inst.Spec.AutoInstall { // the same settings, as answers to Ubuntu's installer
		build = cloudinit.BuildAutoinstallISO
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
