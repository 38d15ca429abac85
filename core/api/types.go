// Package api holds the HTTP/JSON types shared by the host (api/server) and its
// clients (api/client: the CLI and the menu-bar app). Paths are versioned under /v1.
package api

import (
	"time"

	"github.com/fvmhq/fvm/core/vm"
)

// Version is the API version prefix.
const Version = "v1"

// VM is a VM as the host reports it: the saved spec plus the derived state.
type VM struct {
	Spec      vm.Spec   `json:"spec"`
	State     vm.State  `json:"state"`
	Error     string    `json:"error,omitempty"` // why the last operation failed, if it did
	Dir       string    `json:"dir"`
	SSHPort   int       `json:"sshPort,omitempty"`
	Accel     string    `json:"accel,omitempty"`
	PID       int       `json:"pid,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	Backend   string    `json:"backend"`
	Notice    string    `json:"notice,omitempty"` // one-line note from the driver, e.g. why TCG was chosen
}

// CreateRequest creates a VM (and starts it when Start is set).
type CreateRequest struct {
	Spec  vm.Spec `json:"spec"`
	Start bool    `json:"start"`
}

// StopRequest stops a VM: ACPI shutdown, then kill after Timeout; Force kills at once.
type StopRequest struct {
	Force          bool `json:"force"`
	TimeoutSeconds int  `json:"timeoutSeconds"`
}

// SSHInfo is what a client needs to open an SSH session with a pinned host key.
type SSHInfo struct {
	Host         string `json:"host"`
	Port         int    `json:"port"`
	User         string `json:"user"`
	HostKey      string `json:"hostKey"`      // authorized_keys format, pinned
	IdentityFile string `json:"identityFile"` // fvm's private key
	KnownHosts   string `json:"knownHosts"`   // file for OpenSSH with HostKeyAlias
	HostKeyAlias string `json:"hostKeyAlias"`
}

// Image is a local image usable by `fvm run NAME`.
type Image struct {
	Name      string    `json:"name"`
	Version   string    `json:"version,omitempty"`
	Arch      vm.Arch   `json:"arch"`
	Format    string    `json:"format"` // qcow2 or raw
	Path      string    `json:"path"`
	Size      int64     `json:"size"`        // bytes on disk
	Virtual   int64     `json:"virtualSize"` // guest-visible bytes
	Digest    string    `json:"digest"`      // sha256:...
	CreatedAt time.Time `json:"createdAt"`
	Source    string    `json:"source,omitempty"`
}

// Check is one host capability in `fvm check`.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// HostInfo describes the host process.
type HostInfo struct {
	Version string  `json:"version"`
	PID     int     `json:"pid"`
	Checks  []Check `json:"checks,omitempty"`
}

// Event is one line of the /v1/events NDJSON stream.
type Event struct {
	Time  time.Time `json:"time"`
	Type  string    `json:"type"` // vm.created, vm.state, vm.removed, image.progress
	VM    string    `json:"vm,omitempty"`
	State vm.State  `json:"state,omitempty"`
	Error string    `json:"error,omitempty"`
	// Progress of long work (pulls): bytes done of total, when known.
	Done  int64  `json:"done,omitempty"`
	Total int64  `json:"total,omitempty"`
	Image string `json:"image,omitempty"`
}

// Event types.
const (
	EventVMCreated = "vm.created"
	EventVMState   = "vm.state"
	EventVMRemoved = "vm.removed"
	EventProgress  = "image.progress"
)

// ErrorBody is the JSON body of every non-2xx response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"` // not_found, conflict, invalid, unsupported, internal
}

// Error codes.
const (
	CodeNotFound    = "not_found"
	CodeConflict    = "conflict"
	CodeInvalid     = "invalid"
	CodeUnsupported = "unsupported"
	CodeInternal    = "internal"
)
