// Package resources holds the files that install fvm into a desktop: the
// macOS bundle's Info.plist, the Start-at-Login LaunchAgent, the systemd user
// unit for `fvm daemon`, the XDG autostart entry and the menu-bar icons.
//
// The app's own entitlements.plist lives at the repository root, where
// `codesign` reads it; qemu-entitlements.plist here is for signing QEMU.
// The plists hold no XML comments, to stay plain for every Apple parser that
// reads them (codesign, launchd, the kernel's entitlement checks).
package resources

import (
	"bytes"
	"embed"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
)

// Names shared by the bundle, the LaunchAgent and the installers.
const (
	BundleID      = "dev.fvm.app"
	AppName       = "fvm"
	AppExecutable = "fvm-app" // Contents/MacOS/fvm-app beside the fvm CLI (the names must differ on a case-insensitive disk)
	IconFile      = "fvm.icns"

	// The vz helper's nested bundle, fvm.app/Contents/Helpers/fvm-vz.app: an
	// accessory app of its own (one process per VM, owning its display window).
	HelperBundleID   = BundleID + ".vz"
	HelperName       = "fvm VM"
	HelperExecutable = "fvm-vz"

	LaunchAgentLabel = BundleID
	LaunchAgentFile  = LaunchAgentLabel + ".plist" // in ~/Library/LaunchAgents
	SystemdUnitFile  = "fvm-daemon.service"        // in ~/.config/systemd/user
	AutostartFile    = "fvm.desktop"               // in ~/.config/autostart

	// DefaultFvmPath is where `make install` links the CLI on Linux; %h is
	// systemd's specifier for the user's home.
	DefaultFvmPath = "%h/.local/bin/fvm"
)

//go:embed *.tmpl *.png *.icns qemu-entitlements.plist
var files embed.FS

// Homebrew holds the Homebrew formula (Formula/fvm.rb, the CLI from source)
// and cask (Casks/fvm-app.rb, the signed app) as templates: `make release`
// renders them with the release's version and SHA-256 sums.
//
//go:embed homebrew/Formula/fvm.rb homebrew/Casks/fvm-app.rb
var Homebrew embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{"xml": xmlEscape}).ParseFS(files, "*.tmpl"))

func render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

func xmlEscape(s string) (string, error) {
	var b strings.Builder
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		return "", err
	}
	return b.String(), nil
}

// InfoPlist renders fvm.app's Contents/Info.plist for an fvm version such as
// "v0.3.1", "0.3.1-rc1" or "dev". macOS wants CFBundleShortVersionString and
// CFBundleVersion as up to three integers, so the numeric prefix goes there
// ("0.0.0" when there is none) and the full version goes to FVMVersion.
func InfoPlist(version string) ([]byte, error) {
	if version == "" {
		return nil, fmt.Errorf("render Info.plist: empty version (build with -ldflags -X ...Version=...)")
	}
	return render("Info.plist.tmpl", map[string]string{
		"Name":         AppName,
		"Executable":   AppExecutable,
		"IconFile":     IconFile,
		"BundleID":     BundleID,
		"ShortVersion": BundleVersion(version),
		"Version":      version,
	})
}

// HelperInfoPlist renders the vz helper bundle's Contents/Info.plist.
func HelperInfoPlist(version string) ([]byte, error) {
	if version == "" {
		return nil, fmt.Errorf("render the helper's Info.plist: empty version")
	}
	return render("helper-Info.plist.tmpl", map[string]string{
		"Name":         HelperName,
		"Executable":   HelperExecutable,
		"IconFile":     IconFile,
		"BundleID":     HelperBundleID,
		"ShortVersion": BundleVersion(version),
		"Version":      version,
	})
}

var versionPrefix = regexp.MustCompile(`^v?(\d+)(\.\d+)?(\.\d+)?`)

// BundleVersion reduces an fvm version to the "major.minor.patch" form macOS
// accepts in CFBundleShortVersionString ("v1.2.3-4-gabc" → "1.2.3").
func BundleVersion(version string) string {
	m := versionPrefix.FindStringSubmatch(version)
	if m == nil {
		return "0.0.0"
	}
	v := m[1] + m[2] + m[3]
	for strings.Count(v, ".") < 2 {
		v += ".0"
	}
	return v
}

// LaunchAgentPlist renders the LaunchAgent that starts the app at login;
// programPath is the absolute path of the app binary
// (…/fvm.app/Contents/MacOS/fvm-app).
func LaunchAgentPlist(programPath string) ([]byte, error) {
	if !filepath.IsAbs(programPath) {
		return nil, fmt.Errorf("LaunchAgent: program path %q is not absolute (launchd needs a full path)", programPath)
	}
	return render("launchagent.plist.tmpl", map[string]string{"Label": LaunchAgentLabel, "Program": programPath})
}

// SystemdUnit renders the systemd user unit that runs `fvm daemon`. fvmPath
// is the absolute path of the fvm CLI; "" means DefaultFvmPath.
func SystemdUnit(fvmPath string) ([]byte, error) {
	execStart := DefaultFvmPath
	if fvmPath != "" {
		if !filepath.IsAbs(fvmPath) {
			return nil, fmt.Errorf("systemd unit: fvm path %q is not absolute", fvmPath)
		}
		execStart = systemdQuote(fvmPath)
	}
	return render("fvm-daemon.service.tmpl", map[string]string{"ExecStart": execStart + " daemon"})
}

// systemdQuote makes one ExecStart word: % and $ would expand, and spaces,
// quotes and backslashes need a quoted word with C-style escapes.
func systemdQuote(s string) string {
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// AutostartDesktop renders the XDG autostart entry that starts the tray app
// at login; appPath is the absolute path of the app binary.
func AutostartDesktop(appPath string) ([]byte, error) {
	if !filepath.IsAbs(appPath) {
		return nil, fmt.Errorf("autostart entry: app path %q is not absolute", appPath)
	}
	if strings.ContainsAny(appPath, "\n\r") {
		return nil, fmt.Errorf("autostart entry: app path %q contains a line break", appPath)
	}
	return render("fvm.desktop.tmpl", map[string]string{"Exec": desktopExecArg(appPath)})
}

// desktopExecArg quotes one Exec= argument per the Desktop Entry spec: inside
// double quotes ", `, $ and \ take a backslash, % is doubled, and the value
// as a whole is a string in which every backslash is doubled again.
func desktopExecArg(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if strings.ContainsAny(s, " \t\"'\\><~|&;$*?#()`") {
		s = `"` + strings.NewReplacer(`"`, `\"`, "`", "\\`", `$`, `\$`, `\`, `\\`).Replace(s) + `"`
	}
	return strings.ReplaceAll(s, `\`, `\\`)
}

// TrayIcon is the menu-bar template icon (black + alpha, 44×44 px, drawn at
// 16 pt so it stays sharp on Retina); pass it to systray.SetTemplateIcon.
func TrayIcon() []byte { return mustRead("tray-template@2x.png") }

// TrayIconLight is the same glyph in white for tray panels that do not tint
// template icons (Linux); pass it as systray.SetTemplateIcon's regular icon.
func TrayIconLight() []byte { return mustRead("tray-light@2x.png") }

// QEMUEntitlements is the plist that lets a QEMU binary use macOS's
// Hypervisor.framework once signed with it (`codesign --entitlements`).
func QEMUEntitlements() []byte { return mustRead("qemu-entitlements.plist") }

// File returns one embedded file by name (e.g. IconFile for the bundle).
func File(name string) ([]byte, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("resource %s: %w", name, err)
	}
	return b, nil
}

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: only a broken build gets here
	}
	return b
}
