// Command fvm runs Linux VMs from cloud images.
package main

import (
	"os"

	"github.com/fvmhq/fvm/cli"
	"github.com/fvmhq/fvm/cli/daemoncmd"
)

func main() { os.Exit(cli.Main(daemoncmd.New())) }
