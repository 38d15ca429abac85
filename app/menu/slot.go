package menu

import (
	"fmt"
	"strings"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// Action is one entry of a VM's submenu.
type Action int

// A VM submenu's entries, in menu order.
const (
	ActStart Action = iota
	ActStop
	ActRestart
	ActDisplay
	ActConsole
	ActTerminal
	ActCopySSH
	ActLogs
	ActSnapshot
	ActClone
	ActDelete
	numActions
)

// Titles of the VM submenu entries, by Action.
var ActionTitles = [numActions]string{
	ActStart:    "Start",
	ActStop:     "Stop",
	ActRestart:  "Restart",
	ActDisplay:  "Open Display",
	ActConsole:  "Open Console",
	ActTerminal: "Open Terminal",
	ActCopySSH:  "Copy SSH Command",
	ActLogs:     "Show Logs",
	ActSnapshot: "Snapshot…",
	ActClone:    "Clone…",
	ActDelete:   "Delete…",
}

// Mark is the state glyph before a VM's name.
func Mark(s vm.State) string {
	switch s {
	case vm.Running:
		return "●"
	case vm.Stopped:
		return "○"
	case vm.Starting, vm.Stopping:
		return "◐"
	case vm.Suspended:
		return "◑"
	}
	return "⚠"
}

// Enabled says which actions make sense in a state. A VM busy starting or
// stopping can still be stopped; Delete waits until it settles.
func Enabled(s vm.State) [numActions]bool {
	var on [numActions]bool
	on[ActCopySSH], on[ActLogs] = true, true
	switch s {
	case vm.Stopped, vm.Error, vm.Suspended: // Start resumes a suspended VM
		on[ActStart], on[ActDelete] = true, true
		on[ActSnapshot], on[ActClone] = s != vm.Error, s != vm.Error
	case vm.Running:
		on[ActStop], on[ActRestart], on[ActDisplay], on[ActConsole], on[ActTerminal], on[ActDelete] = true, true, true, true, true, true
		on[ActSnapshot], on[ActClone] = true, true
	case vm.Starting: // the screen and the console show the boot
		on[ActStop], on[ActDisplay], on[ActConsole] = true, true, true
	}
	return on
}

// slot is one VM submenu of the pool; it shows whichever VM is assigned.
type slot struct {
	root  *view
	info  *view // disabled line: state and size, or the last error
	items [numActions]*view
	name  string // VM shown, "" when hidden
}

func (m *Menu) newSlot() *slot {
	root := m.tray.AddItem("", "")
	s := &slot{root: newView(root, "")}
	s.info = newView(root.AddSubItem("", ""), "")
	s.info.enable(false)
	for a := Action(0); a < numActions; a++ {
		it := root.AddSubItem(ActionTitles[a], "")
		s.items[a] = newView(it, ActionTitles[a])
		it.OnClick(func() { m.click(s, a) })
	}
	s.root.show(false)
	return s
}

// show renders v into the slot.
func (s *slot) show(v api.VM) {
	s.name = v.Spec.Name
	s.root.set(Mark(v.State)+" "+v.Spec.Name, string(v.State), true)
	info, tip := describe(v), ""
	if v.State == vm.Error && v.Error != "" {
		tip = v.Error
	}
	s.info.set(info, tip, false)
	on := Enabled(v.State)
	for a, it := range s.items {
		it.enable(on[a])
	}
	s.root.show(true)
}

func (s *slot) hide() {
	s.name = ""
	s.root.show(false)
}

// describe is a VM's one-line summary: its state and size, or why it failed.
func describe(v api.VM) string {
	if v.State == vm.Error && v.Error != "" {
		return "Error: " + truncate(firstLine(v.Error), 60)
	}
	parts := []string{stateWord(v.State)}
	if v.Spec.Image != "" {
		parts = append(parts, truncate(v.Spec.Image, 24))
	}
	if v.Spec.CPUs > 0 {
		parts = append(parts, fmt.Sprintf("%d CPU", v.Spec.CPUs))
	}
	if v.Spec.MemoryMiB > 0 {
		parts = append(parts, vm.FormatSize(int64(v.Spec.MemoryMiB)<<20)+" RAM")
	}
	return strings.Join(parts, " · ")
}

func stateWord(s vm.State) string {
	if s == "" {
		return "Unknown"
	}
	return strings.ToUpper(string(s[:1])) + string(s[1:])
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
