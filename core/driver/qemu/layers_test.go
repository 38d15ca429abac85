package qemu

import "testing"

// An edited qemu.json cannot point the disk files fvm acts on (open, chmod,
// remove) out of the VM's directory.
func TestFactsPathsStayInTheVMDir(t *testing.T) {
	for _, f := range []runFacts{
		{Top: "../other/disk.qcow2"},
		{Top: "/etc/passwd"},
		{Top: ".."},
		{Next: &topSwitch{Top: "top-2.qcow2", Old: "../x", Layer: "/l/a.qcow2"}},
		{Next: &topSwitch{Top: "top-2.qcow2", Old: "disk.qcow2", Layer: "relative.qcow2"}},
		{Next: &topSwitch{Top: "top-2.qcow2", Old: "disk.qcow2", Layer: "/l/../../etc/passwd"}},
	} {
		if err := f.checkPaths(); err == nil {
			t.Errorf("%+v accepted", f)
		}
	}
	ok := runFacts{Top: "top-2.qcow2", Next: &topSwitch{Top: "top-3.qcow2", Old: "top-2.qcow2", Layer: "/var/fvm/layers/l-1.qcow2"}}
	if err := ok.checkPaths(); err != nil {
		t.Error(err)
	}
}
