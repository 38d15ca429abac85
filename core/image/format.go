// Package image finds, downloads, verifies and caches the base disks VMs boot from.
package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Format is a disk image (or wrapper) format detected from content, never from the file name.
type Format string

const (
	FormatRaw   Format = "raw"
	FormatQCOW2 Format = "qcow2"
	FormatISO   Format = "iso" // ISO 9660 (installer or seed media)
	FormatGzip  Format = "gzip"
	FormatXZ    Format = "xz"
	FormatZstd  Format = "zstd"
)

// Compressed reports whether f is a compression wrapper rather than a disk format.
func (f Format) Compressed() bool { return f == FormatGzip || f == FormatXZ || f == FormatZstd }

var (
	qcow2Magic = []byte("QFI\xfb")
	gzipMagic  = []byte{0x1f, 0x8b}
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	zstdMagic  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	isoMagic   = []byte("CD001")
)

// mbrSignatureOffset is where a master boot record (or GPT's protective MBR) ends in 0x55AA.
const mbrSignatureOffset = 510

// isoMagicOffset is where the primary volume descriptor's identifier sits (sector 16, byte 1).
const isoMagicOffset = 0x8001

// DetectFormat reads magic numbers from r. Anything unrecognised is raw, which is
// what QEMU assumes too; a short or empty input is raw as well.
func DetectFormat(r io.ReaderAt) (Format, error) {
	head := make([]byte, 8)
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read image header: %w", err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, qcow2Magic):
		return FormatQCOW2, nil
	case bytes.HasPrefix(head, xzMagic):
		return FormatXZ, nil
	case bytes.HasPrefix(head, zstdMagic):
		return FormatZstd, nil
	case bytes.HasPrefix(head, gzipMagic):
		return FormatGzip, nil
	}
	iso := make([]byte, len(isoMagic))
	n, err = r.ReadAt(iso, isoMagicOffset)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read image header: %w", err)
	}
	if n == len(isoMagic) && bytes.Equal(iso, isoMagic) {
		return FormatISO, nil
	}
	return FormatRaw, nil
}

// Info describes an image file as its content declares it.
type Info struct {
	Path        string `json:"path"`
	Format      Format `json:"format"`
	VirtualSize int64  `json:"virtualSize"`           // guest-visible bytes; 0 when unknown (compressed input)
	BackingFile string `json:"backingFile,omitempty"` // qcow2 only
	DataFile    string `json:"dataFile,omitempty"`    // qcow2 only: external data file name
	HasDataFile bool   `json:"hasDataFile,omitempty"` // incompatible feature bit set, even without a name
	Encrypted   bool   `json:"encrypted,omitempty"`   // qcow2 only: needs a key QEMU is never given
	Damaged     string `json:"damaged,omitempty"`     // qcow2 only: why its header cannot be right (truncated...)
	// BootSignature: raw only, the 0x55AA that ends an MBR (GPT disks carry one in their
	// protective MBR). A raw file without it is no bootable disk (e.g. a text file).
	BootSignature bool `json:"bootSignature,omitempty"`
}

// Inspect detects the format of a file fvm keeps (a base, a VM's disk, a
// download) and, for qcow2, reads the header fields that matter for safety (see
// InspectFile). It is opened as every state file is (store.OpenRegular): a
// symlink or FIFO in its place is refused, never followed or waited on.
func Inspect(path string) (Info, error) {
	f, st, err := store.OpenRegular(path)
	if err != nil {
		return Info{}, fmt.Errorf("inspect image: %w", err)
	}
	defer f.Close()
	return InspectFile(f, path, st.Size())
}

// InspectFile is Inspect of an open file of size bytes (named path in errors): the
// one qcow2 header parser. It is parsed here rather than with go-qcow2reader's Open
// because that follows (opens) the backing file named in the untrusted header and stops
// before the header extensions when the external-data-file bit is set.
func InspectFile(r io.ReaderAt, path string, size int64) (Info, error) {
	info := Info{Path: path}
	var err error
	if info.Format, err = DetectFormat(r); err != nil {
		return Info{}, fmt.Errorf("inspect image %q: %w", path, err)
	}
	switch info.Format {
	case FormatRaw:
		info.VirtualSize = size
		var sig [2]byte
		if _, err := r.ReadAt(sig[:], mbrSignatureOffset); err == nil {
			info.BootSignature = sig == [2]byte{0x55, 0xAA}
		}
	case FormatISO:
		info.VirtualSize = size
	case FormatQCOW2:
		if err := parseQCOW2(r, size, &info); err != nil { // a qcow2 magic on no qcow2 fvm can use
			return Info{}, fmt.Errorf("inspect image %q: %w: %w", path, ErrNotDisk, err)
		}
	}
	return info, nil
}

// qcow2 header offsets (docs/interop/qcow2.txt in QEMU).
const (
	qcow2V2HeaderLen       = 72
	qcow2V3HeaderMinLen    = 104
	qcow2MaxBackingNameLen = 1023 // QEMU's own limit
	qcow2ExtDataFile       = 0x44415441
	qcow2ExtEnd            = 0
	qcow2DataFileBit       = 1 << 2 // incompatible feature bit 2
	qcow2MaxExtensions     = 256
	qcow2MaxExtLen         = 1 << 16 // bound on what we read from an untrusted header
	qcow2MinClusterBits    = 9       // QEMU's limits
	qcow2MaxClusterBits    = 21
)

// parseQCOW2 reads the header of a qcow2 file of size bytes. A header whose tables lie
// beyond the end of the file (a truncated copy) is refused here; what references other
// files (backing, data file) or needs a key (encryption) is recorded for CheckSafe.
func parseQCOW2(r io.ReaderAt, size int64, info *Info) error {
	hdr := make([]byte, qcow2V3HeaderMinLen)
	n, err := r.ReadAt(hdr, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if n < qcow2V2HeaderLen {
		return fmt.Errorf("qcow2 header is truncated (%d bytes)", n)
	}
	be := binary.BigEndian
	version := be.Uint32(hdr[4:8])
	backingOff := be.Uint64(hdr[8:16])
	backingLen := be.Uint32(hdr[16:20])
	clusterBits := be.Uint32(hdr[20:24])
	vsize := be.Uint64(hdr[24:32])
	info.Encrypted = be.Uint32(hdr[32:36]) != 0
	l1Size := uint64(be.Uint32(hdr[36:40]))
	l1Off := be.Uint64(hdr[40:48])
	refOff := be.Uint64(hdr[48:56])
	refClusters := uint64(be.Uint32(hdr[56:60]))
	if version < 2 || version > 3 {
		return fmt.Errorf("unsupported qcow2 version %d", version)
	}
	if vsize > 1<<62 {
		return fmt.Errorf("qcow2 virtual size %d is implausible", vsize)
	}
	info.VirtualSize = int64(vsize)
	if backingOff != 0 {
		if backingLen == 0 || backingLen > qcow2MaxBackingNameLen || backingOff > 1<<62 {
			// Still a reference to something outside: report it rather than ignore it.
			info.BackingFile = fmt.Sprintf("<invalid backing file name at offset %d, length %d>", backingOff, backingLen)
		} else {
			name := make([]byte, backingLen)
			if _, err := r.ReadAt(name, int64(backingOff)); err != nil {
				return fmt.Errorf("read qcow2 backing file name: %w", err)
			}
			info.BackingFile = string(name)
		}
	}
	if clusterBits < qcow2MinClusterBits || clusterBits > qcow2MaxClusterBits {
		info.Damaged = fmt.Sprintf("cluster size 2^%d is out of range", clusterBits)
	} else {
		info.Damaged = qcow2Tables(vsize, uint64(1)<<clusterBits, uint64(size), l1Size, l1Off, refOff, refClusters)
	}
	if version == 2 {
		return nil
	}
	if n < qcow2V3HeaderMinLen {
		return fmt.Errorf("qcow2 v3 header is truncated (%d bytes)", n)
	}
	incompatible := be.Uint64(hdr[72:80])
	info.HasDataFile = incompatible&qcow2DataFileBit != 0
	hdrLen := be.Uint32(hdr[100:104])
	if hdrLen < qcow2V3HeaderMinLen || hdrLen > 1<<qcow2MaxClusterBits {
		return fmt.Errorf("qcow2 header length %d is out of range", hdrLen)
	}
	// Header extensions follow the header: type, length, data padded to 8 bytes.
	off := int64(hdrLen)
	for i := 0; i < qcow2MaxExtensions; i++ {
		var eh [8]byte
		if _, err := r.ReadAt(eh[:], off); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("read qcow2 header extension: %w", err)
		}
		typ, l := be.Uint32(eh[0:4]), be.Uint32(eh[4:8])
		if typ == qcow2ExtEnd {
			break
		}
		if l > qcow2MaxExtLen {
			return fmt.Errorf("qcow2 header extension 0x%08x is too long (%d bytes)", typ, l)
		}
		if typ == qcow2ExtDataFile {
			name := make([]byte, l)
			if _, err := r.ReadAt(name, off+8); err != nil {
				return fmt.Errorf("read qcow2 data file name: %w", err)
			}
			info.DataFile = string(name)
		}
		off += 8 + (int64(l)+7)&^7
	}
	return nil
}

// qcow2Tables checks that the tables a qcow2 header declares fit in the file and
// cover its virtual size; it returns what is wrong, or "".
func qcow2Tables(vsize, cluster, size, l1Size, l1Off, refOff, refClusters uint64) string {
	// Every guest cluster needs an L1 entry covering it: the table must be big enough.
	perL1 := cluster * (cluster / 8)
	if need := (vsize + perL1 - 1) / perL1; l1Size < need {
		return fmt.Sprintf("its L1 table has %d entries, %d needed for %d bytes", l1Size, need, vsize)
	}
	end := size
	for _, t := range []struct {
		what     string
		off, len uint64
	}{{"L1 table", l1Off, l1Size * 8}, {"refcount table", refOff, refClusters * cluster}} {
		if t.len == 0 {
			continue
		}
		if t.off > 1<<62 || t.len > 1<<62 || t.off+t.len > end {
			return fmt.Sprintf("it is truncated: its %s ends at byte %d but the file has %d", t.what, t.off+t.len, size)
		}
	}
	return ""
}

// ErrNotDisk marks a file that is no disk image a VM could boot from.
var ErrNotDisk = errors.New("not a disk image")

// CheckDisk accepts what a VM can boot from: a qcow2 that references no other file
// (CheckSafe), or a raw disk with a partition table. Formats are told by content; a raw
// file is anything without a known magic, so the MBR/GPT boot signature is what tells a
// disk from, say, a text file given by mistake.
func CheckDisk(info Info) error {
	if info.VirtualSize > vm.MaxDiskBytes || info.VirtualSize < 0 {
		return fmt.Errorf("%w: %q declares a virtual size of %s, more than fvm's limit of %s (vm.MaxDiskBytes): no real disk is that large",
			ErrNotDisk, info.Path, vm.FormatSize(info.VirtualSize), vm.FormatSize(vm.MaxDiskBytes))
	}
	switch info.Format {
	case FormatQCOW2:
		return CheckSafe(info)
	case FormatRaw:
		if !info.BootSignature {
			return fmt.Errorf("%w: %q has no partition table (no MBR or GPT): pass a qcow2 or a raw disk image", ErrNotDisk, info.Path)
		}
		return nil
	default:
		return fmt.Errorf("%w: %q is %s, not a qcow2 or raw disk image", ErrNotDisk, info.Path, info.Format)
	}
}

// ErrUnsafeImage marks an image refused because it references files outside itself.
var ErrUnsafeImage = errors.New("unsafe image")

// CheckSafe refuses images that would make QEMU open other host files: a qcow2 with a
// backing file or an external data file can point at any path the user can read
// (Lima CVE-2023-32684). Such images are never accepted from outside.
func CheckSafe(info Info) error {
	if info.Format != FormatQCOW2 {
		return nil
	}
	const fix = "flatten it first (qemu-img convert -O qcow2 IN OUT) if you trust it"
	switch {
	case info.BackingFile != "":
		return fmt.Errorf("%w: %q is a qcow2 that references backing file %q (CVE-2023-32684): %s",
			ErrUnsafeImage, info.Path, info.BackingFile, fix)
	case info.HasDataFile || info.DataFile != "":
		name := info.DataFile
		if name == "" {
			name = "(unnamed)"
		}
		return fmt.Errorf("%w: %q is a qcow2 that references external data file %q (CVE-2023-32684): %s",
			ErrUnsafeImage, info.Path, name, fix)
	case info.Encrypted:
		return fmt.Errorf("%w: %q is an encrypted qcow2, which fvm cannot give a key: convert it to an unencrypted qcow2 (qemu-img convert -O qcow2 IN OUT)", ErrUnsafeImage, info.Path)
	case info.Damaged != "":
		return fmt.Errorf("%w: %q is a damaged qcow2: %s: copy or download it again", ErrNotDisk, info.Path, info.Damaged)
	case info.VirtualSize == 0:
		return fmt.Errorf("%w: %q is a qcow2 of virtual size 0: there is no disk in it", ErrNotDisk, info.Path)
	}
	return nil
}
