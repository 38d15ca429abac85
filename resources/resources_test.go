package resources

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"image"
	"image/png"
	"os"
	"reflect"
	"strings"
	"testing"
)

const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
`

// mustDict checks the plist's header and decodes its top-level dictionary.
func mustDict(t *testing.T, data []byte) map[string]any {
	t.Helper()
	if !bytes.HasPrefix(data, []byte(xmlHeader)) {
		t.Fatalf("plist does not start with the standard header:\n%s", data)
	}
	if bytes.Contains(data, []byte("<!--")) {
		t.Errorf("plist has an XML comment; keep plists plain:\n%s", data)
	}
	v, err := DecodePlist(data)
	if err != nil {
		t.Fatalf("malformed plist: %v\n%s", err, data)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("plist root is %T, want a dict", v)
	}
	return m
}

// wantKeys checks each key's value, type included (a "true" string is not <true/>).
func wantKeys(t *testing.T, m map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("missing key %s", k)
			continue
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %#v (%T), want %#v (%T)", k, got, got, w, w)
		}
	}
}

func TestInfoPlist(t *testing.T) {
	for _, tc := range []struct{ version, short string }{
		{"v1.2.3", "1.2.3"},
		{"0.4.0-rc1+meta", "0.4.0"},
		{"v0.3.1-4-gabcdef-dirty", "0.3.1"},
		{"v2", "2.0.0"},
		{"1.5", "1.5.0"},
		{"dev", "0.0.0"},
		{`v9 <&"'>`, "9.0.0"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			data, err := InfoPlist(tc.version)
			if err != nil {
				t.Fatal(err)
			}
			m := mustDict(t, data)
			wantKeys(t, m, map[string]any{
				"CFBundleIdentifier":            BundleID,
				"CFBundleName":                  "fvm",
				"CFBundleDisplayName":           "fvm",
				"CFBundleExecutable":            AppExecutable,
				"CFBundlePackageType":           "APPL",
				"CFBundleInfoDictionaryVersion": "6.0",
				"CFBundleShortVersionString":    tc.short,
				"CFBundleVersion":               tc.short,
				"CFBundleIconFile":              IconFile,
				"FVMVersion":                    tc.version,
				"LSUIElement":                   true,
				"LSMinimumSystemVersion":        "13.0",
				"NSHighResolutionCapable":       true,
				"NSAppleEventsUsageDescription": "fvm opens a Terminal window with an SSH session into your VM.",
				// The console windows load http://127.0.0.1:PORT (App Transport Security).
				"NSAppTransportSecurity": map[string]any{"NSAllowsLocalNetworking": true},
				"NSAppSleepDisabled":     true, // no App Nap for the host of the VMs
			})
			if d, _ := m["NSLocalNetworkUsageDescription"].(string); d == "" {
				t.Error("no NSLocalNetworkUsageDescription (macOS 15 local network privacy)")
			}
		})
	}
	if _, err := InfoPlist(""); err == nil {
		t.Error("InfoPlist(\"\"): want an error")
	}
}

// TestHelperInfoPlist: the vz helper's nested bundle is an accessory app of
// its own (another identifier than fvm.app's, so its windows are not fvm.app's),
// exempt from App Nap.
func TestHelperInfoPlist(t *testing.T) {
	data, err := HelperInfoPlist("v1.2.3-4-gabc")
	if err != nil {
		t.Fatal(err)
	}
	m := mustDict(t, data)
	wantKeys(t, m, map[string]any{
		"CFBundleIdentifier":         HelperBundleID,
		"CFBundleExecutable":         HelperExecutable,
		"CFBundlePackageType":        "APPL",
		"CFBundleShortVersionString": "1.2.3",
		"FVMVersion":                 "v1.2.3-4-gabc",
		"LSUIElement":                true,
		"LSMinimumSystemVersion":     "13.0",
		"NSAppSleepDisabled":         true,
	})
	if HelperBundleID == BundleID || !strings.HasPrefix(HelperBundleID, BundleID+".") {
		t.Errorf("helper identifier %q: want its own, under %s", HelperBundleID, BundleID)
	}
	if d, _ := m["NSLocalNetworkUsageDescription"].(string); d == "" {
		t.Error("no NSLocalNetworkUsageDescription")
	}
	if _, err := HelperInfoPlist(""); err == nil {
		t.Error("empty version accepted")
	}
}

func TestBundleIconIsICNS(t *testing.T) {
	data, err := File(IconFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 8 || string(data[:4]) != "icns" || int(binary.BigEndian.Uint32(data[4:8])) != len(data) {
		t.Fatalf("%s: not an icns container", IconFile)
	}
	sizes := map[string]int{}
	for off := 8; off < len(data); {
		kind, n := string(data[off:off+4]), int(binary.BigEndian.Uint32(data[off+4:off+8]))
		if n < 8 || off+n > len(data) {
			t.Fatalf("%s: entry %q has a bad length %d", IconFile, kind, n)
		}
		img, err := png.Decode(bytes.NewReader(data[off+8 : off+n]))
		if err != nil {
			t.Fatalf("%s: entry %q: %v", IconFile, kind, err)
		}
		sizes[kind] = img.Bounds().Dx()
		off += n
	}
	if want := map[string]int{"ic07": 128, "ic08": 256, "ic09": 512}; !reflect.DeepEqual(sizes, want) {
		t.Fatalf("%s entries %v, want %v", IconFile, sizes, want)
	}
}

func TestLaunchAgentPlist(t *testing.T) {
	program := "/Users/a b/Applications/fvm.app/Contents/MacOS/fvm-app&<x>"
	data, err := LaunchAgentPlist(program)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, mustDict(t, data), map[string]any{
		"Label":                  LaunchAgentLabel,
		"ProgramArguments":       []any{program},
		"RunAtLoad":              true,
		"KeepAlive":              false,
		"ProcessType":            "Interactive",
		"LimitLoadToSessionType": "Aqua",
	})
	if _, err := LaunchAgentPlist("fvm-app"); err == nil {
		t.Error("relative program path: want an error")
	}
}

func TestEntitlements(t *testing.T) {
	app, err := os.ReadFile("../entitlements.plist")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		data []byte
		want map[string]any
	}{
		"entitlements.plist": {app, map[string]any{
			"com.apple.security.virtualization": true,
			"com.apple.security.network.client": true,
			"com.apple.security.network.server": true,
			// Open Terminal scripts Terminal.app; the hardened runtime needs this.
			"com.apple.security.automation.apple-events": true,
		}},
		"qemu-entitlements.plist": {QEMUEntitlements(), map[string]any{
			"com.apple.security.hypervisor": true,
		}},
	} {
		t.Run(name, func(t *testing.T) {
			// Exactly these: an entitlement too many can stop the binary from launching.
			if got := mustDict(t, tc.data); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("entitlements %v, want %v", got, tc.want)
			}
		})
	}
}

// iniSections parses systemd units and desktop entries: [section] then key=value lines.
func iniSections(t *testing.T, data []byte) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	var section string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("bad line %q", line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

func wantINI(t *testing.T, got map[string]map[string][]string, section string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if vs := got[section][k]; len(vs) != 1 || vs[0] != v {
			t.Errorf("[%s] %s = %q, want exactly %q", section, k, vs, v)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	for _, tc := range []struct{ path, exec string }{
		{"", "%h/.local/bin/fvm daemon"},
		{"/usr/local/bin/fvm", "/usr/local/bin/fvm daemon"},
		{`/opt/my fvm%/b"in$/fvm`, `"/opt/my fvm%%/b\"in$$/fvm" daemon`},
	} {
		data, err := SystemdUnit(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		unit := iniSections(t, data)
		wantINI(t, unit, "Service", map[string]string{
			"ExecStart": tc.exec,
			"Restart":   "on-failure",
			"KillMode":  "process", // VMs must outlive a daemon restart
		})
		wantINI(t, unit, "Install", map[string]string{"WantedBy": "default.target"})
	}
	if _, err := SystemdUnit("bin/fvm"); err == nil {
		t.Error("relative fvm path: want an error")
	}
}

func TestAutostartDesktop(t *testing.T) {
	for _, tc := range []struct{ path, exec string }{
		{"/home/u/.local/bin/fvm-app", "/home/u/.local/bin/fvm-app"},
		{"/home/a b/100%/fvm$app", `"/home/a b/100%%/fvm\\$app"`},
	} {
		data, err := AutostartDesktop(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		wantINI(t, iniSections(t, data), "Desktop Entry", map[string]string{
			"Type":                      "Application",
			"Name":                      "fvm",
			"Exec":                      tc.exec,
			"Terminal":                  "false",
			"X-GNOME-Autostart-enabled": "true",
		})
	}
	for _, bad := range []string{"fvm-app", "/a\nb"} {
		if _, err := AutostartDesktop(bad); err == nil {
			t.Errorf("AutostartDesktop(%q): want an error", bad)
		}
	}
}

func TestTrayIcons(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		size int
		rgb  uint8 // every pixel's colour; shape is in alpha alone
	}{
		{"tray-template.png", mustRead("tray-template.png"), 22, 0},
		{"TrayIcon", TrayIcon(), 44, 0},
		{"TrayIconLight", TrayIconLight(), 44, 255},
	} {
		img, err := png.Decode(bytes.NewReader(tc.data))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if b := img.Bounds(); b != image.Rect(0, 0, tc.size, tc.size) {
			t.Fatalf("%s: bounds %v, want %d×%d", tc.name, b, tc.size, tc.size)
		}
		var ink, clear int
		for y := range tc.size {
			for x := range tc.size {
				r, g, b, a := img.At(x, y).RGBA()
				switch {
				case a == 0:
					clear++
				case r*0xffff/a>>8 != uint32(tc.rgb) || g*0xffff/a>>8 != uint32(tc.rgb) || b*0xffff/a>>8 != uint32(tc.rgb):
					t.Fatalf("%s: pixel (%d,%d) has colour %d,%d,%d, want only %d and alpha", tc.name, x, y, r>>8, g>>8, b>>8, tc.rgb)
				default:
					ink++
				}
			}
		}
		if ink == 0 || clear == 0 {
			t.Fatalf("%s: %d inked and %d clear pixels: want both", tc.name, ink, clear)
		}
	}
}
