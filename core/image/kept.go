package image

import (
	"bytes"
	"fmt"

	"github.com/fvmhq/fvm/core/store"
)

// checkKept inspects the file fvm is about to keep in bases/ (a copy it made,
// or a download or build output of its own) through one descriptor, and
// refuses it unless it is a disk a VM can boot (CheckDisk) of format want.
// This, not an inspection of the source before it was copied, is what
// vouches for a base: a source rewritten in place between its check and its
// copy (same inode, new bytes) must not slip in a qcow2 that names a host
// file as its backing or data file (CVE-2023-32684). source names the file
// in errors as the user gave it.
func checkKept(path, source string, want Format) (Info, error) {
	f, st, err := store.OpenRegular(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	info, err := InspectFile(f, source, st.Size())
	if err != nil {
		return Info{}, err
	}
	if err := CheckDisk(info); err != nil {
		return Info{}, fmt.Errorf("%w (it changed while it was copied, or was never a disk; nothing was kept)", err)
	}
	if info.Format != want {
		return Info{}, fmt.Errorf("%w: %q changed from %s to %s while it was copied: nothing was kept; copy it again once nothing writes to it",
			ErrNotDisk, source, want, info.Format)
	}
	info.Path = path
	return info, nil
}

// headLen is how much of a download or decompressed stream is looked at
// before the rest is accepted: a qcow2's magic and an MBR's (or GPT's
// protective MBR's) 0x55AA at byte 510 lie in it. (An ISO, told by sector 16,
// is refused later by CheckDisk: hybrid ISOs carry an MBR too.)
const headLen = 512

// diskHead watches the first headLen bytes of a stream that must be a disk
// image (or, for a download, a compressed one) and fails the stream as soon
// as they are neither a qcow2 header nor a partition table: junk, a web page
// or a stream of zeros under a bomb-sized cap is refused after 512 bytes, not
// after gigabytes. Use it as an io.Writer beside the stream's real
// destination; End decides a stream shorter than the head.
type diskHead struct {
	what         string // URL or name, for errors
	compressedOK bool   // a download: gzip, xz or zstd is unpacked (and checked) later
	buf          []byte
	decided      bool
	err          error
}

func (h *diskHead) Write(p []byte) (int, error) {
	if !h.decided {
		h.buf = append(h.buf, p[:min(headLen-len(h.buf), len(p))]...)
		if len(h.buf) >= headLen {
			h.decide()
		}
	}
	if h.err != nil {
		return 0, h.err
	}
	return len(p), nil
}

// End decides on what came, if the stream ended before headLen bytes.
func (h *diskHead) End() error {
	if !h.decided {
		h.decide()
	}
	return h.err
}

func (h *diskHead) decide() {
	h.decided = true
	h.err = checkHead(h.buf, h.what, h.compressedOK)
	h.buf = nil
}

// checkHead accepts the head of a qcow2, of a raw disk with a partition table
// and, when compressedOK, of gzip, xz or zstd content.
func checkHead(b []byte, what string, compressedOK bool) error {
	f, _ := DetectFormat(bytes.NewReader(b))
	var why string
	switch {
	case f == FormatQCOW2, f.Compressed() && compressedOK:
		return nil
	case f == FormatRaw && len(b) > mbrSignatureOffset+1 && b[mbrSignatureOffset] == 0x55 && b[mbrSignatureOffset+1] == 0xAA:
		return nil
	case f.Compressed():
		why = "compressed twice (" + string(f) + " inside)"
	case len(b) == 0:
		why = "empty"
	case bytes.Count(b, []byte{0}) == len(b):
		why = "only zeros"
	default:
		why = "no partition table (no MBR or GPT)"
	}
	return fmt.Errorf("%w: the first %s of %q are neither a qcow2 header nor a partition table (%s): stopped there, nothing was kept",
		ErrNotDisk, formatBytes(int64(len(b))), what, why)
}
