package resources

import (
	"embed"
	"io/fs"
)

// The web console's page and its bundle (noVNC, xterm.js and our page code),
// built by `make web` (scripts/web.sh) from resources/web/src and the npm
// packages pinned in resources/web/package-lock.json. The bundle is committed,
// so a plain `go build` of a clean clone serves a working console; `make test`
// checks that it is what the sources build.
//
//go:embed web/console.html web/dist
var web embed.FS

// Web holds console.html and dist/ (console.js, console.css, licenses).
func Web() fs.FS {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err)
	}
	return sub
}
