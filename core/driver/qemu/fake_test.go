package qemu

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for qemu-system-*: when FVM_FAKE_QEMU
// is set, it behaves like a QEMU process (pid file, QMP socket) per the mode.
func TestMain(m *testing.M) {
	if mode := os.Getenv("FVM_FAKE_QEMU"); mode != "" {
		os.Exit(fakeQEMU(mode, os.Args[1:]))
	}
	if dir := os.Getenv("FVM_E2E_HOST"); dir != "" {
		os.Exit(e2eHost(dir))
	}
	os.Exit(m.Run())
}

// qmpHandler answers one command: a return value, or an error.
type qmpHandler func(cmd string, args json.RawMessage) (any, *QMPError)

// serveQMP speaks QMP on conn: greeting, capabilities negotiation, then commands.
// after, if set, runs once the answer to a command was written.
func serveQMP(conn net.Conn, h qmpHandler, after func(cmd string)) {
	defer conn.Close()
	w := func(v any) {
		b, _ := json.Marshal(v)
		conn.Write(append(b, '\n'))
	}
	w(map[string]any{"QMP": map[string]any{"version": map[string]any{"qemu": map[string]int{"major": 7}}, "capabilities": []string{}}})
	r := bufio.NewReader(conn)
	negotiated := false
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var req struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
			ID        any             `json:"id"`
		}
		if err := json.Unmarshal(line, &req); err != nil {
			w(map[string]any{"error": QMPError{"GenericError", "bad json"}})
			continue
		}
		switch {
		case req.Execute == "qmp_capabilities":
			negotiated = true
			w(map[string]any{"return": map[string]any{}, "id": req.ID})
			continue
		case !negotiated:
			w(map[string]any{"error": QMPError{"CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'"}, "id": req.ID})
			continue
		}
		ret, qerr := h(req.Execute, req.Arguments)
		if qerr != nil {
			w(map[string]any{"error": qerr, "id": req.ID})
		} else {
			if ret == nil {
				ret = map[string]any{}
			}
			w(map[string]any{"return": ret, "id": req.ID})
		}
		if after != nil {
			after(req.Execute)
		}
	}
}

// fakeQEMU imitates QEMU for Start/Attach tests. Modes: ok (serves QMP; powers
// off on system_powerdown or quit), fail (prints an error, exits 1), mute (never
// answers QMP).
func fakeQEMU(mode string, args []string) int {
	if len(args) == 1 && args[0] == "--version" {
		fmt.Println("QEMU emulator version 7.2.99 (fvm fake)")
		return 0
	}
	opt := map[string]string{}
	for i := 0; i+1 < len(args); i++ {
		if strings.HasPrefix(args[i], "-") {
			opt[args[i]] = args[i+1]
		}
	}
	if mode == "fail" {
		fmt.Fprintf(os.Stderr, "qemu-system-x86_64: -netdev %s: Could not set up host forwarding rule\n", opt["-netdev"])
		return 1
	}
	pidFile := opt["-pidfile"]
	sock := strings.TrimPrefix(strings.Split(opt["-qmp"], ",")[0], "unix:")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The display and serial sockets, bound as QEMU binds them (with the umask).
	var socks []string
	for _, path := range []string{strings.TrimPrefix(opt["-vnc"], "unix:"), serialSocket(args)} {
		if path == "" {
			continue
		}
		if l, err := net.Listen("unix", path); err == nil {
			defer l.Close()
			socks = append(socks, path)
		}
	}
	exit := func() {
		os.Remove(pidFile)
		os.Remove(sock)
		for _, s := range socks {
			os.Remove(s)
		}
		os.Exit(0)
	}
	if mode == "mute" {
		for {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			defer c.Close() // hold connections open, say nothing
		}
	}
	status := "running"
	// Memory in a file (memfile.go): a template's, shared, holds its memory;
	// a clone's, private, must be one a template wrote.
	memPath, memShared := fakeMemoryFile(args)
	if memShared {
		os.WriteFile(memPath, []byte("fake memory of "+opt["-name"]+"\n"), 0o644) // QEMU makes a missing file 0644
	}
	var ignoreShared bool // the migration capability x-ignore-shared
	load := func() bool { // the state on fd 3, as QEMU checks it
		b, _ := io.ReadAll(os.NewFile(3, "incoming"))
		msg := fakeLoadError(string(b), ignoreShared, memPath, memShared)
		if msg != "" {
			fmt.Fprintln(os.Stderr, "qemu-system-x86_64: "+msg)
			fmt.Fprintln(os.Stderr, "qemu-system-x86_64: load of migration failed: Invalid argument")
			os.Remove(pidFile)
			os.Remove(sock)
			return false
		}
		status = "paused" // as the source was when it saved
		return true
	}
	switch opt["-incoming"] {
	case "fd:3": // restore: the state must be one this fake saved
		if !load() {
			return 1
		}
	case "defer": // migrate-incoming says when
		status = "inmigrate"
	}
	saved := func(extra string) string { // a saved state's one line
		where := "memory in stream"
		if ignoreShared && memShared {
			where = "memory in file"
		}
		return fmt.Sprintf("%s memory of %s, status %s%s, %s, ignore-shared=%v\n", fakeStateMagic, opt["-name"], status, extra, where, ignoreShared)
	}
	fds := map[string]*os.File{}
	var pendingFD *os.File
	// The block layer and migration as a snapshot drives them (snapshot.go).
	top := diskFile(args)
	var pauseBefore bool
	migration := "none" // none, pre-switchover, completed, cancelled
	var migrateTo *os.File
	var stoppedFirst string // a live migration's guest was paused before it began
	var jobs []string
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		fc := &fdConn{UnixConn: c.(*net.UnixConn), got: func(f *os.File) { pendingFD = f }}
		serveQMP(fc, func(cmd string, raw json.RawMessage) (any, *QMPError) {
			switch cmd {
			case "query-status":
				return map[string]any{"status": status, "running": status == "running"}, nil
			case "query-name":
				return map[string]any{"name": opt["-name"]}, nil
			case "system_powerdown", "quit", "migrate-set-parameters":
				return nil, nil
			case "migrate-set-capabilities":
				var a struct {
					Capabilities []struct {
						Capability string
						State      bool
					}
				}
				json.Unmarshal(raw, &a)
				for _, c := range a.Capabilities {
					switch c.Capability {
					case "pause-before-switchover":
						pauseBefore = c.State
					case "x-ignore-shared":
						ignoreShared = c.State
					}
				}
				return nil, nil
			case "query-block-jobs":
				out := []any{}
				for _, j := range jobs {
					out = append(out, map[string]any{"device": j})
				}
				return out, nil
			case "block-job-cancel":
				jobs = nil
				return nil, nil
			case "query-block":
				return []any{map[string]any{"device": "disk0", "inserted": map[string]any{"image": map[string]any{"filename": top}}}}, nil
			case "query-named-block-nodes":
				out := []any{}
				p := top
				for i := 0; p != "" && i < 64; i++ {
					out = append(out, map[string]any{"node-name": fmt.Sprintf("#block%d", i), "drv": "qcow2", "file": p})
					p = fakeBacking(p)
				}
				return out, nil
			case "blockdev-snapshot-sync":
				var a struct {
					Device       string `json:"device"`
					SnapshotFile string `json:"snapshot-file"`
					Mode         string `json:"mode"`
				}
				json.Unmarshal(raw, &a)
				if a.Device != "disk0" || a.Mode != "existing" {
					return nil, &QMPError{"GenericError", "unexpected snapshot " + string(raw)}
				}
				if _, err := os.Stat(a.SnapshotFile); err != nil {
					return nil, &QMPError{"GenericError", err.Error()}
				}
				if os.Getenv("FVM_FAKE_QEMU_SNAPSHOT") == "fail" {
					return nil, &QMPError{"GenericError", "Could not open '" + a.SnapshotFile + "': Permission denied"}
				}
				top = a.SnapshotFile
				return nil, nil
			case "block-stream":
				jobs = append(jobs, "fvm-flatten")
				return nil, nil
			case "migrate-continue":
				if migration != "pre-switchover" {
					return nil, &QMPError{"GenericError", "Migration not in expected state: " + migration}
				}
				fmt.Fprint(migrateTo, saved(", disk "+top+stoppedFirst))
				migrateTo.Close()
				migration = "completed"
				status = "postmigrate"
				return nil, nil
			case "migrate-incoming":
				if status != "inmigrate" {
					return nil, &QMPError{"GenericError", "The incoming migration has already been started"}
				}
				var a struct{ URI string }
				json.Unmarshal(raw, &a)
				if a.URI != "fd:3" || !load() {
					os.Exit(1) // QEMU ends when an incoming state fails to load
				}
				return nil, nil
			case "migrate_cancel":
				if migration == "pre-switchover" { // QEMU restarts only a guest that ran before
					if migration, status = "cancelled", "running"; stoppedFirst != "" {
						status = "postmigrate"
					}
				}
				return nil, nil
			case "stop":
				status = "paused"
				return nil, nil
			case "cont":
				status = "running"
				return nil, nil
			case "getfd":
				var a struct{ Fdname string }
				json.Unmarshal(raw, &a)
				if pendingFD == nil {
					return nil, &QMPError{"GenericError", "No file descriptor supplied via SCM_RIGHTS"}
				}
				fds[a.Fdname], pendingFD = pendingFD, nil
				return nil, nil
			case "migrate":
				var a struct{ URI string }
				json.Unmarshal(raw, &a)
				f := fds[strings.TrimPrefix(a.URI, "fd:")]
				if f == nil {
					return nil, &QMPError{"GenericError", "File descriptor named '" + a.URI + "' has not been found"}
				}
				if pauseBefore { // live: the guest runs until the last pass stops it
					if stoppedFirst = ""; status == "paused" {
						stoppedFirst = ", stopped before the copy"
					}
					migrateTo, migration, status = f, "pre-switchover", "finish-migrate"
					return nil, nil
				}
				fmt.Fprint(f, saved(""))
				f.Close()
				migration = "completed"
				return nil, nil
			case "query-migrate":
				if migration == "none" {
					return map[string]any{}, nil
				}
				return map[string]any{"status": migration, "downtime": 7}, nil
			case "screendump":
				var a struct{ Filename string }
				json.Unmarshal(raw, &a)
				// A 2x1 screen: one red pixel, one white, as QEMU writes it.
				if err := os.WriteFile(a.Filename, []byte("P6\n2 1\n255\n\xff\x00\x00\xff\xff\xff"), 0o644); err != nil {
					return nil, &QMPError{"GenericError", err.Error()}
				}
				return nil, nil
			}
			return nil, &QMPError{"CommandNotFound", "The command " + cmd + " has not been found"}
		}, func(cmd string) {
			if cmd == "system_powerdown" || cmd == "quit" {
				time.Sleep(50 * time.Millisecond) // a guest takes a moment to power off
				exit()
			}
		})
	}
}

const fakeStateMagic = "FVM-FAKE-QEMU-STATE"

// diskFile is the file= of the VM disk's -drive (id=disk0).
func diskFile(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-drive" && strings.Contains(args[i+1], "id=disk0,") {
			for _, kv := range strings.Split(args[i+1], ",") {
				if p, ok := strings.CutPrefix(kv, "file="); ok {
					return p
				}
			}
		}
	}
	return ""
}

// fakeBacking is the backing file a qcow2's header names ("" for none).
func fakeBacking(p string) string { return backingOf(p) }

// fdConn reads with ReadMsgUnix so that descriptors passed with getfd arrive.
type fdConn struct {
	*net.UnixConn
	got func(*os.File)
}

func (c *fdConn) Read(b []byte) (int, error) {
	oob := make([]byte, 64)
	n, oobn, _, _, err := c.ReadMsgUnix(b, oob)
	if oobn > 0 {
		if msgs, perr := syscall.ParseSocketControlMessage(oob[:oobn]); perr == nil {
			for _, m := range msgs {
				if fds, ferr := syscall.ParseUnixRights(&m); ferr == nil {
					for _, fd := range fds {
						c.got(os.NewFile(uintptr(fd), "passed"))
					}
				}
			}
		}
	}
	return n, err
}

// serialSocket is the path= of the serial port's -chardev (id=serial0).
func serialSocket(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "-chardev" || !strings.Contains(args[i+1], "id=serial0,") {
			continue
		}
		for _, kv := range strings.Split(args[i+1], ",") {
			if p, ok := strings.CutPrefix(kv, "path="); ok {
				return p
			}
		}
	}
	return ""
}

// fakeMemoryFile is the file of a memory-backend-file -object in args, and
// whether it is shared.
func fakeMemoryFile(args []string) (path string, shared bool) {
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "-object" || !strings.HasPrefix(args[i+1], "memory-backend-file,") {
			continue
		}
		for _, kv := range strings.Split(args[i+1], ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "mem-path":
				path = v
			case "share":
				shared = v == "on"
			}
		}
	}
	return path, shared
}

// fakeLoadError is what QEMU would say of loading state with the capability
// ignoreShared and memory mapped from memPath ("" when it loads).
func fakeLoadError(state string, ignoreShared bool, memPath string, memShared bool) string {
	if !strings.HasPrefix(state, fakeStateMagic) {
		return "not a saved state"
	}
	if sent := strings.Contains(state, "ignore-shared=true"); sent != ignoreShared {
		return fmt.Sprintf("Capability x-ignore-shared is %v, but received capability is %v", ignoreShared, sent)
	}
	if strings.Contains(state, "memory in file") {
		b, err := os.ReadFile(memPath)
		if memPath == "" || memShared || err != nil || !strings.HasPrefix(string(b), "fake memory of ") {
			return "the state left the memory out, and no template's memory is mapped"
		}
	}
	return ""
}
