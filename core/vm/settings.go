package vm

// Settings are the VM settings a user can give by flag, FVM_* environment
// variable or config file (core/config resolves them, in that order of priority).
type Settings struct {
	CPUs      int
	MemoryMiB int
	DiskBytes int64
	User      string
	Accel     string // auto, kvm, hvf, tcg
	Backend   string // auto or a backend's name
}

// Defaults is the one table of defaults for a new VM: the CLI shows and uses
// it, and the host fills in from it what an API client left out.
var Defaults = Settings{
	CPUs:      2,
	MemoryMiB: 2048,
	DiskBytes: 20 << 30,
	User:      "fvm",
	Accel:     Auto,
	Backend:   Auto,
}

// Fill sets the spec's unset (zero) settings from s.
func (s Settings) Fill(spec *Spec) {
	if spec.CPUs == 0 {
		spec.CPUs = s.CPUs
	}
	if spec.MemoryMiB == 0 {
		spec.MemoryMiB = s.MemoryMiB
	}
	if spec.DiskBytes == 0 {
		spec.DiskBytes = s.DiskBytes
	}
	if spec.User == "" {
		spec.User = s.User
	}
	if spec.Accel == "" {
		spec.Accel = s.Accel
	}
	if spec.Backend == "" {
		spec.Backend = s.Backend
	}
}

// Apply sets all of the spec's settings from s.
func (s Settings) Apply(spec *Spec) {
	spec.CPUs, spec.MemoryMiB, spec.DiskBytes = s.CPUs, s.MemoryMiB, s.DiskBytes
	spec.User, spec.Accel, spec.Backend = s.User, s.Accel, s.Backend
}
