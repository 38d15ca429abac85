package vm

// State is a VM's lifecycle state. It is always derived from the live system
// (process alive, QMP answers), never trusted from a file.
type State string

const (
	Stopped  State = "stopped"
	Starting State = "starting"
	Running  State = "running"
	Stopping State = "stopping"
	Error    State = "error"
	// Suspended: no process runs; the VM's memory and devices are saved in its
	// directory and the next start resumes from them.
	Suspended State = "suspended"
	// Broken: the VM's own files cannot be read (its spec, its disk); it can
	// only be removed (`fvm rm NAME`). api.VM.Broken says why.
	Broken State = "broken"
)

// Active reports whether the VM holds a running hypervisor process.
func (s State) Active() bool { return s == Starting || s == Running || s == Stopping }
