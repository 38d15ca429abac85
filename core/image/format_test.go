package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// qcow2Header builds a minimal v3 qcow2 header by hand: enough for Inspect, not for QEMU.
func qcow2Header(size uint64, backing string, dataFile string) []byte {
	be := binary.BigEndian
	h := make([]byte, 512)
	copy(h, qcow2Magic)
	be.PutUint32(h[4:], 3)
	be.PutUint32(h[20:], 16)
	be.PutUint64(h[24:], size)
	perL1 := uint64(1<<16) * (1 << 16 / 8)
	be.PutUint32(h[36:], uint32((size+perL1-1)/perL1)) // L1 entries, at byte 256
	be.PutUint64(h[40:], 256)

	be.PutUint32(h[100:], 104)
	off := 104
	if dataFile != "" {
		be.PutUint64(h[72:], qcow2DataFileBit)
		be.PutUint32(h[off:], qcow2ExtDataFile)
		be.PutUint32(h[off+4:], uint32(len(dataFile)))
		copy(h[off+8:], dataFile)
		off += 8 + (len(dataFile)+7)&^7
	}
	off += 8 // end extension (zeros)
	if backing != "" {
		be.PutUint64(h[8:], uint64(off))
		be.PutUint32(h[16:], uint32(len(backing)))
		copy(h[off:], backing)
	}
	return h
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDetectFormat(t *testing.T) {
	iso := make([]byte, 0x8010)
	copy(iso[isoMagicOffset:], "CD001")
	cases := map[string]struct {
		in   []byte
		want Format
	}{
		"empty": {nil, FormatRaw},
		"raw":   {bytes.Repeat([]byte{0}, 1024), FormatRaw},
		"qcow2": {qcow2Header(1<<20, "", ""), FormatQCOW2},
		"gzip":  {[]byte{0x1f, 0x8b, 8, 0}, FormatGzip},
		"xz":    {append([]byte(nil), xzMagic...), FormatXZ},
		"zstd":  {[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, FormatZstd},
		"iso":   {iso, FormatISO},
		"short": {[]byte("QF"), FormatRaw},
	}
	for name, c := range cases {
		got, err := DetectFormat(bytes.NewReader(c.in))
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, c.want)
		}
	}
}

func TestInspectHandBuiltQCOW2(t *testing.T) {
	p := writeFile(t, "clean.img", qcow2Header(5<<30, "", ""))
	info, err := Inspect(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != FormatQCOW2 || info.VirtualSize != 5<<30 || info.BackingFile != "" || CheckSafe(info) != nil {
		t.Fatalf("clean qcow2: %+v, %v", info, CheckSafe(info))
	}

	p = writeFile(t, "backed.img", qcow2Header(1<<20, "/etc/shadow", ""))
	info, err = Inspect(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.BackingFile != "/etc/shadow" {
		t.Fatalf("backing file: %+v", info)
	}
	err = CheckSafe(info)
	if !errors.Is(err, ErrUnsafeImage) || !strings.Contains(err.Error(), "/etc/shadow") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("CheckSafe = %v", err)
	}

	p = writeFile(t, "data.img", qcow2Header(1<<20, "", "/dev/sda"))
	info, err = Inspect(p)
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasDataFile || info.DataFile != "/dev/sda" {
		t.Fatalf("data file: %+v", info)
	}
	if err := CheckSafe(info); !errors.Is(err, ErrUnsafeImage) || !strings.Contains(err.Error(), "/dev/sda") {
		t.Fatalf("CheckSafe = %v", err)
	}
}

func TestInspectQemuImg(t *testing.T) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(qemuImg, args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
		}
	}
	base := filepath.Join(dir, "base.qcow2")
	overlay := filepath.Join(dir, "overlay.qcow2")
	withData := filepath.Join(dir, "withdata.qcow2")
	run("create", "-q", "-f", "qcow2", base, "64M")
	run("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay)
	run("create", "-q", "-f", "qcow2", "-o", "data_file="+filepath.Join(dir, "data.raw"), withData, "1M")

	info, err := Inspect(base)
	if err != nil || info.Format != FormatQCOW2 || info.VirtualSize != 64<<20 || CheckSafe(info) != nil {
		t.Fatalf("base: %+v %v", info, err)
	}
	info, err = Inspect(overlay)
	if err != nil || info.BackingFile != base {
		t.Fatalf("overlay: %+v %v", info, err)
	}
	if err := CheckSafe(info); !errors.Is(err, ErrUnsafeImage) || !strings.Contains(err.Error(), "backing file") {
		t.Fatalf("overlay CheckSafe = %v", err)
	}
	info, err = Inspect(withData)
	if err != nil || !info.HasDataFile || info.DataFile != filepath.Join(dir, "data.raw") {
		t.Fatalf("data file: %+v %v", info, err)
	}
	if err := CheckSafe(info); !errors.Is(err, ErrUnsafeImage) || !strings.Contains(err.Error(), "data file") {
		t.Fatalf("data file CheckSafe = %v", err)
	}
}

func FuzzQCOW2Header(f *testing.F) {
	f.Add(qcow2Header(1<<20, "", ""))
	f.Add(qcow2Header(1<<20, "base.qcow2", ""))
	f.Add(qcow2Header(1<<20, "", "data.raw"))
	f.Add([]byte("QFI\xfb\x00\x00\x00\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		if fm, err := DetectFormat(r); err != nil || fm != FormatQCOW2 {
			return
		}
		var info Info
		_ = parseQCOW2(r, int64(len(b)), &info)
	})
}

func TestCheckDisk(t *testing.T) {
	mbr := make([]byte, 1<<16)
	mbr[510], mbr[511] = 0x55, 0xAA
	iso := make([]byte, 0x8010)
	copy(iso[isoMagicOffset:], "CD001")
	cases := map[string]struct {
		in      []byte
		wantErr error
	}{
		"partitioned raw":  {mbr, nil},
		"text file":        {[]byte("root:x:0:0:root:/root:/bin/bash\n"), ErrNotDisk},
		"zeros":            {make([]byte, 1<<16), ErrNotDisk},
		"iso":              {iso, ErrNotDisk},
		"gzip":             {[]byte{0x1f, 0x8b, 8, 0}, ErrNotDisk},
		"qcow2":            {qcow2Header(1<<20, "", ""), nil},
		"qcow2 w/ backing": {qcow2Header(1<<20, "/etc/shadow", ""), ErrUnsafeImage},
	}
	for name, c := range cases {
		info, err := Inspect(writeFile(t, "img", c.in))
		if err != nil {
			t.Fatalf("%s: Inspect: %v", name, err)
		}
		if err := CheckDisk(info); !errors.Is(err, c.wantErr) || (err != nil && !strings.Contains(err.Error(), info.Path)) {
			t.Errorf("%s: CheckDisk = %v, want %v naming the file", name, err, c.wantErr)
		}
	}
}
