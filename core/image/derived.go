package image

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/fvmhq/fvm/core/api"
)

// Files derived from a cached base (a backend's conversion of it, say vz's raw
// copy of a qcow2) live beside it in the bases dir as BASE.SUFFIX: counted in
// `fvm images` sizes, kept by prune while their base stays (or while a VM
// reads them) and removed with it.

// DerivedPath names the file derived from base with suffix ("vz.raw").
func DerivedPath(base, suffix string) string { return base + "." + suffix }

// derivedName matches BasePath's names (ALGO-HEX.FORMAT) followed by a suffix.
var derivedName = regexp.MustCompile(`^((?:sha256|sha512)-[0-9a-f]+\.(?:qcow2|raw))\.[A-Za-z0-9._-]+$`)

// DerivedBase returns the base that the file at p derives from, if its name
// says it is derived (DerivedPath), and whether it is.
func DerivedBase(p string) (string, bool) {
	name := filepath.Base(p)
	if strings.HasPrefix(name, ".") {
		return "", false
	}
	m := derivedName.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	return filepath.Join(filepath.Dir(p), m[1]), true
}

// derivedFiles lists the files derived from an image's base disk (DerivedPath).
func (s *Service) derivedFiles(img api.Image) []string {
	if img.Path == "" {
		return nil
	}
	matches, _ := filepath.Glob(globEscape(img.Path) + ".*")
	var out []string
	for _, m := range matches {
		if b, ok := DerivedBase(m); ok && b == img.Path {
			if st, err := os.Lstat(m); err == nil && st.Mode().IsRegular() {
				out = append(out, m)
			}
		}
	}
	return out
}

// globEscape quotes the pattern characters of a path for filepath.Glob.
func globEscape(p string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`).Replace(p)
}
