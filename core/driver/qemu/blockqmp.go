package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// QMP of the block layer: which file the VM's disk writes, its snapshot
// (a new top), and streaming layers into the top (flattening).

// diskDevice is the VM disk's block backend (-drive id=disk0, BuildArgs).
const diskDevice = "disk0"

// queryTop is the file QEMU writes for the VM's disk (its top node's).
func queryTop(ctx context.Context, q *QMP) (string, error) {
	var blocks []struct {
		Device   string `json:"device"`
		Inserted *struct {
			NodeName string `json:"node-name"`
			Image    struct {
				Filename string `json:"filename"`
			} `json:"image"`
		} `json:"inserted"`
	}
	if err := q.Execute(ctx, "query-block", nil, &blocks); err != nil {
		return "", err
	}
	for _, b := range blocks {
		if b.Device == diskDevice && b.Inserted != nil {
			return fileOf(b.Inserted.Image.Filename), nil
		}
	}
	return "", fmt.Errorf("qemu has no disk %s", diskDevice)
}

// fileOf is the file a block node's filename names. After a live snapshot
// QEMU names the top "json:{...}": its backing is open under the old top's
// name, while its header names the layer (the same file under another name,
// beginSwitch). The file is its protocol child's filename then; a name that
// is no such pseudo-filename is returned as it is.
func fileOf(filename string) string {
	rest, ok := strings.CutPrefix(filename, "json:")
	if !ok {
		return filename
	}
	var node struct {
		File json.RawMessage `json:"file"`
	}
	if json.Unmarshal([]byte(rest), &node) != nil {
		return filename
	}
	var child struct {
		Driver   string `json:"driver"`
		Filename string `json:"filename"`
	}
	if json.Unmarshal(node.File, &child) == nil && child.Driver == "file" && child.Filename != "" {
		return child.Filename
	}
	var name string
	if json.Unmarshal(node.File, &name) == nil && name != "" {
		return name
	}
	return filename
}

// nodeOf is the name of the format node (qcow2, raw) QEMU opened file as.
func nodeOf(ctx context.Context, q *QMP, file string) (string, error) {
	var nodes []struct {
		NodeName string `json:"node-name"`
		Drv      string `json:"drv"`
		File     string `json:"file"`
	}
	if err := q.Execute(ctx, "query-named-block-nodes", map[string]any{"flat": true}, &nodes); err != nil {
		return "", err
	}
	for _, n := range nodes {
		if n.File == file && n.Drv != "file" {
			return n.NodeName, nil
		}
	}
	return "", fmt.Errorf("qemu has no node of %s open", file)
}

// snapshotTop switches the VM's disk to top, an existing qcow2 whose header
// names the current top's layer: QEMU appends the current top under it
// itself (mode existing opens top without its backing file), so what the
// header says is only for the next run.
func snapshotTop(ctx context.Context, q *QMP, top, nodeName string) error {
	return q.Execute(ctx, "blockdev-snapshot-sync", map[string]any{
		"device": diskDevice, "snapshot-file": top, "snapshot-node-name": nodeName,
		"format": "qcow2", "mode": "existing",
	}, nil)
}

// streamJob is the job id of a flattening.
const streamJob = "fvm-flatten"

// startStream copies, in QEMU's background, what the layers between the top
// and base hold into the top, then writes base into the top's header (QEMU
// does that once the job completed; "" for none: the top becomes whole).
func startStream(ctx context.Context, q *QMP, base string) error {
	args := map[string]any{"device": diskDevice, "job-id": streamJob}
	if base != "" {
		node, err := nodeOf(ctx, q, base)
		if err != nil {
			return err
		}
		args["base-node"], args["backing-file"] = node, base
	}
	return q.Execute(ctx, "block-stream", args, nil)
}

// cancelJobs cancels a block job on the VM's disk (a flattening, which
// blocks snapshots and saving) and waits until it is gone; what it copied
// stays valid.
func cancelJobs(ctx context.Context, q *QMP) error {
	var jobs []struct {
		Device string `json:"device"`
	}
	if err := q.Execute(ctx, "query-block-jobs", nil, &jobs); err != nil || len(jobs) == 0 {
		return err
	}
	for _, j := range jobs {
		if err := q.Execute(ctx, "block-job-cancel", map[string]any{"device": j.Device, "force": true}, nil); err != nil {
			return fmt.Errorf("cancel the block job %s: %w", j.Device, err)
		}
	}
	for {
		if err := q.Execute(ctx, "query-block-jobs", nil, &jobs); err != nil {
			return err
		}
		if len(jobs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("a block job of the disk does not end: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
