package api

import "time"

// Named snapshots and clones of a VM (fvm snapshot, fvm clone): the routes
// under /v1/vms/{name}/snapshots and /v1/vms/{name}/clone.

// Snapshot is one named snapshot of a VM (fvm snapshot): its disk, frozen as
// a layer that it, the VM and every clone share, and with Memory its running
// state, which a restore or a clone resumes.
type Snapshot struct {
	VM        string    `json:"vm"`
	Tag       string    `json:"tag"`
	Dir       string    `json:"dir"`
	Backend   string    `json:"backend,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	Memory    bool      `json:"memory"` // the VM's memory is in it (else disk only: restores and clones boot cold)
	Bytes     int64     `json:"bytes"`  // on disk: the saved memory and the frozen layer's own data
	// PauseSeconds is how long the guest was paused for it (its filesystems
	// frozen, for a disk-only snapshot of a running VM).
	PauseSeconds float64 `json:"pauseSeconds,omitempty"`
	Notice       string  `json:"notice,omitempty"` // e.g. why it has no memory
}

// SnapshotRequest is the body of POST /v1/vms/{name}/snapshots.
type SnapshotRequest struct {
	Tag string `json:"tag,omitempty"` // "" for the time (UTC, 20260102-150405)
}

// RestoreRequest is the body of POST /v1/vms/{name}/snapshots/{tag}/restore:
// the VM goes back to the snapshot (booted from its disk when it has no
// memory); everything since is discarded. A running VM needs Force.
type RestoreRequest struct {
	Force bool `json:"force,omitempty"`
}

// CloneRequest is the body of POST /v1/vms/{name}/clone: a new VM from one of
// the VM's snapshots (Tag), or from a snapshot taken now (no Tag): running
// and re-identified when the snapshot has its memory, booted cold otherwise.
type CloneRequest struct {
	Tag  string `json:"tag,omitempty"`
	Name string `json:"name,omitempty"` // "" for a generated one
	// NoStart creates the clone without starting it (it starts from the snapshot later).
	NoStart bool `json:"noStart,omitempty"`
}

// Removed answers DELETE /v1/vms/{name} and .../snapshots/{tag}: what was
// kept of what it read, and why (disk layers other VMs or snapshots read).
type Removed struct {
	Kept []string `json:"kept,omitempty"`
	// Freed is what the layers removed with it took.
	Freed int64 `json:"freed,omitempty"`
}
