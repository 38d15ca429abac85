package qemu

import "testing"

// TestFileOf: the top QEMU writes after a live snapshot has a json:
// pseudo-filename (seen from QEMU 7.2); the file is its protocol child's. A
// wrong answer here made a settle undo a switch QEMU had made.
func TestFileOf(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/vm/disk.qcow2", "/vm/disk.qcow2"},
		{`json:{"backing": {"driver": "qcow2", "file": {"driver": "file", "filename": "/vm/disk.qcow2"}}, "driver": "qcow2", "file": {"driver": "file", "filename": "/vm/disk-5ac699a73b70.qcow2"}}`, "/vm/disk-5ac699a73b70.qcow2"},
		{`json:{"driver": "qcow2", "file": "/vm/disk-1.qcow2"}`, "/vm/disk-1.qcow2"},
		{`json:{"driver": "qcow2", "file": {"driver": "nbd", "server": {}}}`, `json:{"driver": "qcow2", "file": {"driver": "nbd", "server": {}}}`},
		{`json:{broken`, `json:{broken`},
	} {
		if got := fileOf(c.in); got != c.want {
			t.Errorf("fileOf(%s) = %q, want %q", c.in, got, c.want)
		}
	}
}
