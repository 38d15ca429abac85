//go:build !cgo

// Command fvm-app is fvm's menu-bar app; it needs cgo for the tray.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "fvm-app was built without cgo, which its tray menu needs: rebuild with CGO_ENABLED=1 (see `make app`)")
	os.Exit(1)
}
