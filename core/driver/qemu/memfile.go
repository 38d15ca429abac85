package qemu

import (
	"context"
	"fmt"
	"os"

	"github.com/fvmhq/fvm/core/vm"
)

// A warm template's memory in a file its clones map copy-on-write.
//
// A warm template (driver.StartOptions.Template) runs with its guest memory
// in MemoryFile, a shared mapping: when it is suspended, the file holds the
// guest's memory and the saved state only the devices (QEMU's migration
// capability x-ignore-shared leaves shared memory out of the stream: a few MB
// instead of hundreds). A clone maps the same file private (share=off): what
// it reads comes from the page cache every clone shares, what it writes is its
// own copy. Its restore loads the devices only, and its memory is the pages it
// touched, not the whole guest's (a clone of a 1 GiB guest that loaded its
// copy was 1.2 GiB resident).
//
// The file must never change while clones map it (a private mapping still
// reads the pages it did not write from the file): it is made in the
// template's build directory and only ever read after the snapshot is frozen;
// removing the snapshot unlinks it, which running clones do not notice.
//
// QEMU 7.2 has no command-line switch for the capability, so a clone's QEMU
// starts with -incoming defer and loadIncoming sets it before the state comes
// in (the stream must say the same, or QEMU refuses it). Every outgoing
// migration sets it to whether the memory is shared (saveCaps): a clone's
// suspend or snapshot carries its memory like any VM's, and resumes without
// the file.
//
// A snapshot of a clone that maps the file (runFacts.MappedMemory) copies its
// memory with the guest paused (saveLive): copied live under TCG (QEMU 7.2)
// with pause-before-switchover, the forks of such clones crashed in their
// kernel after the restore in 4 of 6 tries (a bare QEMU: 3 of 11, 0 of 5
// without that pause, 0 of 8 with ordinary memory); paused, none did. A host
// that dies between the stop and the copy leaves the switch journalled, and
// settle lets the guest go.

// ramID is the id QEMU gives the guest's memory on a plain -m: the memory
// object takes it, so the state of a VM run one way loads into the other
// (a clone's own suspend, resumed without the template's file).
func ramID(arch vm.Arch) string {
	if arch == vm.ARM64 {
		return "mach-virt.ram"
	}
	return "pc.ram"
}

// memoryFileObject is the -object that maps the guest's memory from cfg.MemoryFile.
func memoryFileObject(cfg Config) string {
	share := "off"
	if cfg.MemoryShared {
		share = "on"
	}
	return fmt.Sprintf("memory-backend-file,id=%s,size=%dM,mem-path=%s,share=%s", ramID(cfg.Arch), cfg.MemoryMiB, escape(cfg.MemoryFile), share)
}

// saveCaps are the migration capabilities of a save: shared memory left out
// or not, and whether the migration pauses before it switches over.
func saveCaps(sharedMemory, pause bool) map[string]any {
	return map[string]any{"capabilities": []map[string]any{
		{"capability": "x-ignore-shared", "state": sharedMemory},
		{"capability": "pause-before-switchover", "state": pause}}}
}

// loadIncoming starts loading the state passed as fd 3 into a QEMU started
// with -incoming defer, its memory mapped from a template's file.
func loadIncoming(ctx context.Context, p paths) error {
	return qmpDo(ctx, p.qmp, func(q *QMP) error {
		if err := q.Execute(ctx, "migrate-set-capabilities", map[string]any{"capabilities": []map[string]any{
			{"capability": "x-ignore-shared", "state": true}}}, nil); err != nil {
			return err
		}
		return q.Execute(ctx, "migrate-incoming", map[string]any{"uri": "fd:3"}, nil)
	})
}

// templateMemory is the memory file a clone of the snapshot sp maps, when
// the snapshot's state left its memory out ("" when the state has it).
func templateMemory(sp paths) (string, error) {
	meta, ok := loadState(sp)
	if !ok || !meta.SharedMemory {
		return "", nil
	}
	st, err := os.Stat(sp.mem)
	if err != nil {
		return "", fmt.Errorf("%w: its memory file: %v", errRestore, err)
	}
	if !st.Mode().IsRegular() || st.Size() < meta.MemoryBytes {
		return "", fmt.Errorf("%w: its memory file %s is not the template's (%d bytes, want %d)", errRestore, sp.mem, st.Size(), meta.MemoryBytes)
	}
	return sp.mem, nil
}

// syncMemoryFile writes a suspended template's memory file to disk before
// the snapshot counts: clones read it for as long as it exists. It stays
// writable (QEMU 7.2 opens a private mapping's file read-write), and nothing
// writes it.
func syncMemoryFile(p paths) error {
	f, err := os.Open(p.mem)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
