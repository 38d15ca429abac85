package vz

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// The control protocol between the host and a VM's helper, on ControlSocket
// (0600, in the 0700 instance directory): one JSON request per connection, one
// JSON response line back. Pure Go, so both ends are tested on every OS.

// ControlProtocol is the protocol version a helper announces in Hello.
const ControlProtocol = 1

// Control operations.
const (
	OpHello      = "hello"       // who the helper is (name, dir, pid)
	OpState      = "state"       // the VM's state (a MachineState)
	OpStop       = "stop"        // ask the guest to power off (requestStop: the power button)
	OpSuspend    = "suspend"     // save the VM's state to Plan.SaveTo, then end the VM
	OpShowWindow = "show-window" // show the VM's display window and bring it to the front
	OpSnapshot   = "snapshot"    // pause the VM, clone its disk (and save its state) into Dir, resume it
)

// ControlRequest is one request.
type ControlRequest struct {
	Op string `json:"op"`
	// Dir and Memory are a snapshot's (OpSnapshot): where it goes (a new
	// directory), and whether the VM's state goes with its disk.
	Dir    string `json:"dir,omitempty"`
	Memory bool   `json:"memory,omitempty"`
}

// ControlResponse answers a request.
type ControlResponse struct {
	OK    bool         `json:"ok"`
	Error string       `json:"error,omitempty"`
	Hello *Hello       `json:"hello,omitempty"`
	State MachineState `json:"state,omitempty"`
	// Window is the display window's number after show-window: its
	// NSWindow.windowNumber, a CGWindowID (`screencapture -l WINDOW`).
	Window int `json:"window,omitempty"`
	// PauseMS is how long a snapshot paused the VM.
	PauseMS int64 `json:"pauseMS,omitempty"`
}

// Hello identifies a helper: the host re-adopts it only when it names the
// instance being adopted.
type Hello struct {
	Name     string `json:"name"`
	Dir      string `json:"dir"`
	PID      int    `json:"pid"`
	Protocol int    `json:"protocol"`
}

// MachineState is VZVirtualMachineState, by name.
type MachineState string

const (
	StateStopped   MachineState = "stopped"
	StateRunning   MachineState = "running"
	StatePaused    MachineState = "paused"
	StateError     MachineState = "error"
	StateStarting  MachineState = "starting"
	StatePausing   MachineState = "pausing"
	StateResuming  MachineState = "resuming"
	StateStopping  MachineState = "stopping"
	StateSaving    MachineState = "saving"
	StateRestoring MachineState = "restoring"
)

// VMState maps a helper's state to fvm's. A paused or saving VM still holds
// its helper, so it counts as running (as QEMU's paused VMs do).
func (s MachineState) VMState() vm.State {
	switch s {
	case StateStarting, StateRestoring:
		return vm.Starting
	case StateStopping:
		return vm.Stopping
	case StateStopped:
		return vm.Stopped
	case StateError:
		return vm.Error
	}
	return vm.Running
}

// Controlled is what the helper's control server drives: the VM it owns.
type Controlled interface {
	Hello() Hello
	State() MachineState
	RequestStop() error
	// Suspend saves the VM's state and ends it; it returns once the state is saved.
	Suspend(ctx context.Context) error
	// ShowWindow shows the display window and returns its window number.
	ShowWindow(ctx context.Context) (window int, err error)
	// Snapshot pauses the VM, clones its disk, firmware variables and
	// machine identifier into dir and, with memory, saves its state there;
	// then resumes it. It returns how long the VM was paused.
	Snapshot(ctx context.Context, dir string, memory bool) (time.Duration, error)
}

// maxRequest bounds a request line.
const maxRequest = 4 << 10

// ListenControl listens on the control socket path, private to the user (0600).
func ListenControl(path string) (net.Listener, error) {
	if err := store.CheckSocketPath(path); err != nil {
		return nil, err
	}
	os.Remove(path) // a dead helper's
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// ServeControl answers requests on ln until ctx ends (then it closes ln).
// Requests run concurrently: a long Suspend does not block a State.
func ServeControl(ctx context.Context, ln net.Listener, c Controlled) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			serveOne(ctx, conn, c)
		}()
	}
}

func serveOne(ctx context.Context, conn net.Conn, c Controlled) {
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(conn, maxRequest)).ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return
	}
	conn.SetReadDeadline(time.Time{})
	var req ControlRequest
	var resp ControlResponse
	if err := json.Unmarshal(line, &req); err != nil {
		resp = ControlResponse{Error: fmt.Sprintf("bad request: %v", err)}
	} else {
		resp = handle(ctx, req, c)
	}
	b, _ := json.Marshal(resp)
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	conn.Write(append(b, '\n'))
}

func handle(ctx context.Context, req ControlRequest, c Controlled) ControlResponse {
	result := func(err error) ControlResponse {
		if err != nil {
			return ControlResponse{Error: err.Error(), State: c.State()}
		}
		return ControlResponse{OK: true, State: c.State()}
	}
	switch req.Op {
	case OpHello:
		h := c.Hello()
		return ControlResponse{OK: true, Hello: &h, State: c.State()}
	case OpState:
		return result(nil)
	case OpStop:
		return result(c.RequestStop())
	case OpSuspend:
		return result(c.Suspend(ctx))
	case OpShowWindow:
		n, err := c.ShowWindow(ctx)
		r := result(err)
		r.Window = n
		return r
	case OpSnapshot:
		if !filepath.IsAbs(req.Dir) {
			return ControlResponse{Error: fmt.Sprintf("snapshot directory %q is not absolute", req.Dir), State: c.State()}
		}
		d, err := c.Snapshot(ctx, req.Dir, req.Memory)
		r := result(err)
		r.PauseMS = d.Milliseconds()
		return r
	}
	return ControlResponse{Error: fmt.Sprintf("unknown operation %q", req.Op)}
}

// errHelperSays marks an error the helper answered (as opposed to no answer).
var errHelperSays = errors.New("vz helper")

// callControl sends one request to the helper at sock and returns its answer;
// a refused request comes back as an error wrapping errHelperSays.
func callControl(ctx context.Context, sock, op string) (ControlResponse, error) {
	return callControlReq(ctx, sock, ControlRequest{Op: op})
}

// callControlReq is callControl with a whole request.
func callControlReq(ctx context.Context, sock string, req ControlRequest) (ControlResponse, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return ControlResponse{}, err
	}
	defer conn.Close()
	// Unblocks the read once ctx has ended (so the error is ctx's).
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return ControlResponse{}, err
	}
	line, err := bufio.NewReader(io.LimitReader(conn, 1<<20)).ReadBytes('\n')
	if err != nil {
		if ctx.Err() != nil {
			return ControlResponse{}, context.Cause(ctx)
		}
		return ControlResponse{}, fmt.Errorf("read answer: %w", err)
	}
	var resp ControlResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return ControlResponse{}, fmt.Errorf("bad answer %q: %w", line, err)
	}
	if !resp.OK {
		return resp, fmt.Errorf("%w: %s", errHelperSays, resp.Error)
	}
	return resp, nil
}
