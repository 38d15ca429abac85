// Package api holds the HTTP/JSON types shared by the host (api/server) and its
// clients (api/client: the CLI and the menu-bar app). Paths are versioned under /v1.
package api

import (
	"strconv"
	"time"

	"github.com/fvmhq/fvm/core/vm"
)

// Version is the API version prefix.
const Version = "v1"

// Revision numbers the contract within Version: it grows with every change a
// host of the previous revision would refuse (a new request field, a route).
// Host and client exchange it (RevisionHeader on every response; HostInfo;
// the greeting of `fvm system dial-stdio` for remote hosts); the client
// refuses a host of another revision with what to do.
//
// 3: display, screenshot and console routes. 4: remote hosts (uploads,
// tunnels to guest ports and to the web console, HostInfo.Hostname),
// CreateRequest.CheckOnly, logs through the driver, the NIC route.
// 5: snapshots and clones, rm's report.
var Revision = revision(revisionOverride, 5)

// revisionOverride is empty in every release. The remote-host e2e test builds
// a binary of another revision with
// -ldflags "-X github.com/fvmhq/fvm/core/api.revisionOverride=99"
// to see both sides refuse each other with what to upgrade.
var revisionOverride string

func revision(override string, r int) int {
	if n, err := strconv.Atoi(override); err == nil && n > 0 {
		return n
	}
	return r
}

// RevisionHeader carries the host's Revision on every response.
const RevisionHeader = "Fvm-Api-Revision"

// HostName is the Host of every request on the socket; the host refuses others
// (DNS rebinding from a browser).
const HostName = "fvm"

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
	// StartedAt is when the current run began (running VMs only).
	StartedAt *time.Time `json:"startedAt,omitempty"`
	Backend   string     `json:"backend"`
	Notice    string     `json:"notice,omitempty"` // one-line note from the driver, e.g. why TCG was chosen
	// Boot says how the current run began: cold, resumed (from its saved state) or clone.
	Boot string `json:"boot,omitempty"`
	// Logs are the VM's log files: the serial console first, then the backend's own.
	Logs []string `json:"logs,omitempty"`
	// VNCSocket is where the hypervisor serves the VM's display as VNC, when it does.
	VNCSocket string `json:"vncSocket,omitempty"`
	// Broken says why the VM cannot be used (an unreadable spec, a missing disk)
	// and how to remove it (`fvm rm NAME`); only Spec.Name and Dir are reliable then.
	Broken string `json:"broken,omitempty"`
	// NIC is a running VM's network interface (`fvm inspect` only).
	NIC *NIC `json:"nic,omitempty"`
	// LastStart says how the VM's last start went, phase by phase.
	LastStart *StartReport `json:"lastStart,omitempty"`
}

// NIC is a VM's network interface: its address, stable for the VM's life,
// and the guest's IP addresses on it.
type NIC struct {
	MAC string `json:"mac"`
	// IPs are the guest's addresses on the NIC; none while the guest cannot
	// say (its agent not up yet).
	IPs []string `json:"ips,omitempty"`
	// Source says where IPs come from: "guest-agent" (QEMU's guest agent
	// asked now) or "dhcp-lease" (vz: the address its network leases the NIC).
	Source string `json:"source,omitempty"`
	// Error is why the guest's addresses are unknown, when they are.
	Error string `json:"error,omitempty"`
}

// StartReport is how one start of a VM went: how it began and where the time
// went until its first SSH connection, phase by phase, in order.
type StartReport struct {
	Boot      string    `json:"boot"` // cold, resumed or clone (driver.Boot*)
	StartedAt time.Time `json:"startedAt"`
	// Via is how a clone was re-identified: "agent" (the guest agent) or "ssh"
	// (over the template's key), and Note why not through the agent.
	Via    string       `json:"via,omitempty"`
	Note   string       `json:"note,omitempty"`
	Phases []StartPhase `json:"phases"`
}

// StartPhase is one step of a start; the phases of a start follow each other.
type StartPhase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"` // how long this phase took
}

// Phase names of a StartReport.
const (
	PhaseBoot       = "hypervisor"   // the hypervisor up, the guest booting (cold)
	PhaseRestore    = "restore"      // the saved memory loaded, the guest running (resumed, clone)
	PhaseAgent      = "agent-ready"  // the guest agent answered (a clone; a cold boot of fvm's own image)
	PhaseTemplate   = "template-ssh" // reached over the template's key (clone, without the agent)
	PhaseReidentify = "re-identify"  // the clone made its own machine; through the agent, its key, names and user keys (clone)
	PhaseKeyLive    = "key-live"     // its own host key answered, the login done, the rest of the script run and its identity checked (clone)
	PhaseThaw       = "thaw"         // a spare clone's guest going on, its clock set (spare)
	PhaseRename     = "rename"       // a spare clone's guest named as the VM, its timers started (spare)
	PhaseAdopt      = "adopt"        // a spare clone's directory put in place, its hypervisor adopted under the VM's name (spare)
	PhaseSSH        = "first-ssh"    // SSH answered (a cold boot: a session ran; a clone: the login done): the VM is ready
)

// Total is the time from the start to the end of its last phase.
func (r StartReport) Total() float64 {
	var t float64
	for _, p := range r.Phases {
		t += p.Seconds
	}
	return t
}

// DisplayRequest is the body of POST /v1/vms/{name}/display.
type DisplayRequest struct {
	// Serial asks for the serial console (the web console's serial tab)
	// instead of the screen.
	Serial bool `json:"serial,omitempty"`
}

// Display answers POST /v1/vms/{name}/display: how the VM's screen is shown.
type Display struct {
	// Native: the host has shown the screen in the VM's own window (vz):
	// there is nothing more to do.
	Native bool `json:"native,omitempty"`
	// URL is the host's web console page for the VM, with its token (valid
	// until the host stops), for the client to open in a browser.
	URL   string   `json:"url,omitempty"`
	State vm.State `json:"state"`
}

// ConsoleProtocol is the Upgrade token of GET /v1/vms/{name}/console?tail=N:
// after "101 Switching Protocols" the connection carries the VM's serial
// console both ways, the tail lines of earlier output first. Closing it
// detaches; the VM goes on.
const ConsoleProtocol = "fvm-console"

// CreateRequest creates a VM (and starts it when Start is set). Cold makes it
// boot from its image even when a warm snapshot of that image and shape exists.
type CreateRequest struct {
	Spec  vm.Spec `json:"spec"`
	Start bool    `json:"start"`
	Cold  bool    `json:"cold,omitempty"`
	// CheckOnly makes nothing: the host refuses what it can refuse before the
	// image is resolved (backend, name, settings), so a client learns it
	// before a long pull or upload. The rules live in the host only.
	CheckOnly bool `json:"checkOnly,omitempty"`
	// ISOUpload installs from an ISO the client uploaded (POST /v1/uploads:
	// its Upload.Digest) instead of Spec.ISO, a path on the host: a client on
	// another machine than the host's uploads its file.
	ISOUpload string `json:"isoUpload,omitempty"`
}

// WarmRequest is the body of POST /v1/images/warm: make the warm snapshot of
// an image for VMs of this shape (the spec's image, arch, cpus, memory, user).
type WarmRequest struct {
	Spec vm.Spec `json:"spec"`
	// Spare, when set, turns on (or off) a spare clone of the snapshot kept
	// ready, frozen, for the next VM of its image and shape.
	Spare *bool `json:"spare,omitempty"`
}

// WarmSnapshot is one warm snapshot of an image: a VM of its shape booted once
// and saved, which new VMs of that image and shape start from in seconds.
type WarmSnapshot struct {
	Dir       string    `json:"dir"`
	Arch      vm.Arch   `json:"arch"`
	CPUs      int       `json:"cpus"`
	MemoryMiB int       `json:"memoryMiB"`
	User      string    `json:"user"`
	DiskBytes int64     `json:"diskBytes"` // clones need a --disk at least this large
	Bytes     int64     `json:"bytes"`     // on disk
	CreatedAt time.Time `json:"createdAt"`
	Current   bool      `json:"current"`         // it fits this host's QEMU and fvm (else it is not used, and prune removes it)
	Spare     bool      `json:"spare,omitempty"` // a spare clone of it is ready (fvm image warm --spare)
}

// StopRequest stops a VM: ACPI shutdown, then kill after Timeout; Force kills at once.
// Save suspends it instead (its state saved for the next start), where its backend can.
type StopRequest struct {
	Force          bool `json:"force"`
	TimeoutSeconds int  `json:"timeoutSeconds"`
	Save           bool `json:"save,omitempty"`
}

// StartRequest is the optional body of POST /v1/vms/{name}/start.
type StartRequest struct {
	// Cold discards a saved state (suspend, or a warm snapshot for a new clone)
	// and boots from the disk.
	Cold bool `json:"cold,omitempty"`
	// ISO attaches an installer ISO (an absolute path on the host) to a VM
	// made without an image (a blank one, or one installed from another ISO)
	// and boots it: the firmware boots it when the disk has nothing to boot.
	ISO string `json:"iso,omitempty"`
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
	// Set for images pulled from the catalog (`fvm pull debian:12`): the
	// canonical reference, the distro, upstream's build id (empty when only a
	// "latest" alias was reachable) and upstream's checksum of the file as its
	// index lists it, which `fvm update` compares with what upstream offers now.
	Ref            string `json:"ref,omitempty"`
	Distro         string `json:"distro,omitempty"`
	Build          string `json:"build,omitempty"`
	UpstreamDigest string `json:"upstreamDigest,omitempty"` // sha256:... or sha512:...
	// Warm are the image's warm snapshots.
	Warm []WarmSnapshot `json:"warm,omitempty"`
	// Broken says why the image cannot be used (an unreadable entry, a missing
	// base disk) and how to remove it; only Name is reliable then.
	Broken string `json:"broken,omitempty"`
}

// Check is one host capability in `fvm check`.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// BackendNames are the host's backends that run VMs here, preferred first.
func (h HostInfo) BackendNames() []string {
	var names []string
	for _, b := range h.Backends {
		if b.Available {
			names = append(names, b.Name)
		}
	}
	return names
}

// HostInfo describes the host process.
type HostInfo struct {
	Version string `json:"version"`
	// Hostname is the name of the machine the host runs on, so a client of a
	// remote host can say which machine it talked to.
	Hostname string `json:"hostname,omitempty"`
	// APIRevision is the host's Revision (0: a host from before the handshake).
	APIRevision int     `json:"apiRevision,omitempty"`
	PID         int     `json:"pid"`
	Checks      []Check `json:"checks,omitempty"`
	// Backends are the hypervisor backends, preferred first (`--backend auto`
	// picks the first that can run a VM), then those this host lacks.
	Backends []Backend `json:"backends,omitempty"`
}

// Backend is one hypervisor backend of the host.
type Backend struct {
	Name      string   `json:"name"`
	Available bool     `json:"available"`
	Reason    string   `json:"reason,omitempty"`   // why it is not available
	Features  []string `json:"features,omitempty"` // declared capabilities (driver.Features)
}

// Event is one line of the /v1/events NDJSON stream.
type Event struct {
	Time  time.Time `json:"time"`
	Type  string    `json:"type"` // vm.created, vm.state, vm.removed, image.progress
	VM    string    `json:"vm,omitempty"`
	State vm.State  `json:"state,omitempty"`
	Error string    `json:"error,omitempty"`
	// Progress of long work (pulls): bytes done of total, when known.
	Done  int64   `json:"done,omitempty"`
	Total int64   `json:"total,omitempty"`
	Image string  `json:"image,omitempty"`
	Arch  vm.Arch `json:"arch,omitempty"`
	// Phase of an image.progress event: one of the Phase* constants.
	Phase string `json:"phase,omitempty"`
	// Ports of a vm.ports event: every forward of the VM now.
	Ports []Port `json:"ports,omitempty"`
}

// Event types.
const (
	EventVMCreated    = "vm.created"
	EventVMState      = "vm.state"
	EventVMReady      = "vm.ready" // the guest's SSH answers (again): the host holds its connection
	EventVMPorts      = "vm.ports" // the VM's port forwards changed (Ports lists them now)
	EventVMRemoved    = "vm.removed"
	EventVMSnapshots  = "vm.snapshots" // the VM's snapshots changed (taken, removed)
	EventProgress     = "image.progress"
	EventImagePulled  = "image.pulled"
	EventImageRemoved = "image.removed"
	EventImageWarm    = "image.warm" // a warm snapshot of an image was made
)

// Phases of an image.progress event, in order. Done and Total (bytes; Total 0
// when the server does not say) are set while downloading.
const (
	PhaseResolving   = "resolving"   // asking upstream (mirror) for the current build and checksum
	PhaseWaiting     = "waiting"     // another pull of the same file is running: it is shared
	PhaseDownloading = "downloading" // bytes arrive, hashed on the way
	PhaseVerified    = "verified"    // checksum matched; the base is being put into the cache
	PhaseUpToDate    = "up-to-date"  // the cached build is upstream's current one: nothing downloaded
)

// PullRequest is the body of POST /v1/images/pull.
type PullRequest struct {
	Ref  string  `json:"ref"`            // catalog reference (debian, debian:12, ubuntu:noble) or local name
	Arch vm.Arch `json:"arch,omitempty"` // default: the host's
	// IfMissing returns a local image of that name, or the cached build of the
	// reference, without asking upstream: what `run` and `create` need.
	IfMissing bool `json:"ifMissing,omitempty"`
	// Mirrors override the host's images.<distro>.mirror for this request, so
	// FVM_IMAGES_<DISTRO>_MIRROR in the client's environment applies even when
	// the host was started from another shell.
	Mirrors map[string]string `json:"mirrors,omitempty"`
	// Indexes likewise override images.<distro>.index (FVM_IMAGES_<DISTRO>_INDEX).
	Indexes map[string]string `json:"indexes,omitempty"`
}

// ImportRequest is the body of POST /v1/images/import.
type ImportRequest struct {
	Source string `json:"source"` // absolute file path, or an http(s) URL; with Upload, the client's file name (shown as the image's source)
	// Upload imports a file the client uploaded (POST /v1/uploads: its
	// Upload.Digest) instead of Source: the client's machine is not the host's.
	Upload string `json:"upload,omitempty"`
	// Name registers the image; empty derives one from the file name.
	Name     string  `json:"name,omitempty"`
	Checksum string  `json:"checksum,omitempty"` // sha256:HEX or sha512:HEX of the bytes at Source
	Arch     vm.Arch `json:"arch,omitempty"`
	Version  string  `json:"version,omitempty"`
	// InsecureSkipVerify allows a URL without Checksum: nothing vouches for the bytes.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// PullLine is one line of the NDJSON stream answering POST /v1/images/pull and
// POST /v1/images/import (Content-Type application/x-ndjson, status 200):
// zero or more lines with Progress, then exactly one last line with Image (it
// worked) or Error (it failed). A stream that ends without that line means the
// host went away. Requests refused before any work starts (bad body, unknown
// image) get a plain JSON error with its HTTP status instead of a stream.
type PullLine struct {
	Progress *Event     `json:"progress,omitempty"`
	Image    *Image     `json:"image,omitempty"`
	Error    *ErrorBody `json:"error,omitempty"`
}

// UpdatesRequest is the body of POST /v1/images/updates.
type UpdatesRequest struct {
	Mirrors map[string]string `json:"mirrors,omitempty"` // as in PullRequest
	Indexes map[string]string `json:"indexes,omitempty"`
}

// ImageUpdate is one row of `fvm update`: a cached catalog image and what
// upstream offers now.
type ImageUpdate struct {
	Name            string  `json:"name"` // local registry name
	Ref             string  `json:"ref"`
	Arch            vm.Arch `json:"arch"`
	CachedBuild     string  `json:"cachedBuild,omitempty"`
	CachedDigest    string  `json:"cachedDigest,omitempty"`
	AvailableBuild  string  `json:"availableBuild,omitempty"`
	AvailableDigest string  `json:"availableDigest,omitempty"`
	Newer           bool    `json:"newer"`
	Error           string  `json:"error,omitempty"` // upstream could not be asked
}

// CatalogItem is one release of `fvm images --available`.
type CatalogItem struct {
	Ref      string    `json:"ref"` // distro:version
	Distro   string    `json:"distro"`
	Title    string    `json:"title"`
	Version  string    `json:"version"`
	Codename string    `json:"codename,omitempty"`
	Default  bool      `json:"default,omitempty"` // what the bare distro name pulls
	Arches   []vm.Arch `json:"arches"`
	Mirror   string    `json:"mirror"`
	Cached   []vm.Arch `json:"cached,omitempty"` // arches with a cached build
	// Trust says what authenticates this distro's downloads: a signature with
	// which key, or a checksum index taken from which host.
	Trust string `json:"trust,omitempty"`
}

// PruneResult is the answer of POST /v1/images/prune.
type PruneResult struct {
	Removed []string `json:"removed"` // files deleted
	Freed   int64    `json:"freed"`   // bytes
	// Kept says what prune kept that nothing named (snapshot layers VMs read), and why.
	Kept []string `json:"kept,omitempty"`
}

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

// ExecRequest is the body of POST /v1/vms/{name}/exec, which the host answers
// with 101 Switching Protocols (Upgrade: stream.Upgrade) and then the framed
// streams of api/stream over the same connection.
type ExecRequest struct {
	Command   string `json:"command,omitempty"`   // a shell command line; "" opens the login shell
	Subsystem string `json:"subsystem,omitempty"` // instead of a command, e.g. "sftp"
	TTY       bool   `json:"tty,omitempty"`       // a PTY of Cols×Rows with TERM=Term
	Term      string `json:"term,omitempty"`
	Cols      int    `json:"cols,omitempty"`
	Rows      int    `json:"rows,omitempty"`
}

// What a WaitRequest waits for.
const (
	WaitSSH       = "ssh"        // the guest's SSH answers (the host holds its connection)
	WaitCloudInit = "cloud-init" // cloud-init finished in the guest: user-data and packages are done
)

// WaitRequest is the body of POST /v1/vms/{name}/wait: it answers once the VM
// is ready in that sense, or fails.
type WaitRequest struct {
	For string `json:"for"` // WaitSSH or WaitCloudInit
}

// WaitResult says what was waited for and how it ended.
type WaitResult struct {
	For    string `json:"for"`
	Status string `json:"status"`           // "ready", or cloud-init's: done, error, degraded, none
	Detail string `json:"detail,omitempty"` // cloud-init's own words when it is not plainly done
}

// Port is one forward from this machine into a VM (GET /v1/vms/{name}/ports).
type Port struct {
	HostIP    string `json:"hostIP"`
	HostPort  uint16 `json:"hostPort"`
	GuestPort uint16 `json:"guestPort"`
	Auto      bool   `json:"auto"` // made because the guest listens on GuestPort
	Via       string `json:"via"`  // static (-p), hostfwd (the user network) or ssh (a tunnel, for guest loopback)
}

// UploadsPath is the route a client streams a file of its own to (POST, the
// file's bytes as the body): the host keeps it under its digest for a later
// request that names it (ImportRequest.Upload, CreateRequest.ISOUpload).
// The query's name is the file's base name; UploadSizeHeader declares its
// length; the trailer UploadDigestHeader carries the SHA-256 the client read,
// which the host compares with what arrived: a cut or altered upload leaves
// nothing behind.
const UploadsPath = "/v1/uploads"

const (
	UploadSizeHeader   = "Fvm-Upload-Size"
	UploadDigestHeader = "Fvm-Upload-Digest" // a trailer: sha256:HEX
)

// Upload answers POST /v1/uploads: a file the host now holds.
type Upload struct {
	Digest string `json:"digest"` // sha256:HEX, what later requests name
	Size   int64  `json:"size"`
	Name   string `json:"name"` // the client's base name
}

// TunnelProtocol is the Upgrade token of the tunnel routes, after which the
// connection carries the bytes of one TCP connection both ways:
//   - GET /v1/vms/{name}/tunnel?port=N: to the guest's port N (its loopback),
//     over the SSH connection the host holds to the VM (`fvm port-forward`);
//   - GET /v1/console/tunnel?port=L: to the host's web console, which then
//     also accepts the Host 127.0.0.1:L of the client's listener (`fvm
//     display` of a remote host).
const TunnelProtocol = "fvm-tcp/1"
