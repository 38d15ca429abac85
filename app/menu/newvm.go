package menu

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// Size is a New VM size preset.
type Size struct {
	Name      string
	CPUs      int
	MemoryMiB int
	DiskBytes int64
}

// Sizes are the presets New VM offers.
var Sizes = []Size{
	{"Small", 1, 1024, 10 << 30},
	{"Medium", 2, 2048, 20 << 30},
	{"Large", 4, 8192, 50 << 30},
}

// Label is how a size is offered: "Medium: 2 CPUs, 2G memory, 20G disk".
func (s Size) Label() string {
	cpus := "CPUs"
	if s.CPUs == 1 {
		cpus = "CPU"
	}
	return fmt.Sprintf("%s: %d %s, %s memory, %s disk", s.Name, s.CPUs, cpus, vm.FormatSize(int64(s.MemoryMiB)<<20), vm.FormatSize(s.DiskBytes))
}

const newVMTitle = "New VM"

func (m *Menu) newVMFlow() {
	if err := m.createVM(context.Background()); err != nil {
		m.log.Warn("new vm", "err", err)
		m.opts.Dialogs.Error("fvm: could not create the VM", oneLine(err))
	}
}

// createVM asks for an image, a size and a name, then creates and starts the
// VM. Cancelling any dialog creates nothing.
func (m *Menu) createVM(ctx context.Context) error {
	c, d := m.c(), m.opts.Dialogs
	imgs, err := c.Images(ctx)
	if err != nil {
		return err
	}
	if len(imgs) == 0 {
		return errors.New("there are no local images yet: build one with `fvm image build debian` or pull one with `fvm run IMAGE`")
	}
	byLabel := map[string]api.Image{}
	var labels []string
	for _, img := range imgs {
		l := imageLabel(img)
		if _, dup := byLabel[l]; dup {
			continue
		}
		byLabel[l] = img
		labels = append(labels, l)
	}
	choice, ok, err := d.Pick(newVMTitle, "Image for the new VM:", labels)
	if err != nil || !ok {
		return err
	}
	img, ok := byLabel[choice]
	if !ok {
		return fmt.Errorf("image %q is not in the list", choice)
	}

	sizeLabels := make([]string, len(Sizes))
	for i, s := range Sizes {
		sizeLabels[i] = s.Label()
	}
	choice, ok, err = d.Pick(newVMTitle, "Size of the new VM:", sizeLabels)
	if err != nil || !ok {
		return err
	}
	var size Size
	for i, l := range sizeLabels {
		if l == choice {
			size = Sizes[i]
		}
	}
	if size.CPUs == 0 {
		return fmt.Errorf("size %q is not in the list", choice)
	}

	name, ok, err := d.Entry(newVMTitle, "Name of the new VM (leave empty for a generated one):", "")
	if err != nil || !ok {
		return err
	}
	name = strings.TrimSpace(name)
	if name != "" {
		if err := vm.ValidateName(name); err != nil {
			return err
		}
	}
	spec := vm.Spec{Name: name, Image: img.Name, Arch: img.Arch, CPUs: size.CPUs, MemoryMiB: size.MemoryMiB, DiskBytes: size.DiskBytes}
	v, err := c.Create(ctx, api.CreateRequest{Spec: spec, Start: true})
	if err != nil {
		return err
	}
	d.Notify("fvm", fmt.Sprintf("%s is starting: Open Terminal in its menu logs you in once it is up", v.Spec.Name))
	return nil
}

// imageLabel names an image in the New VM list: "debian-local (amd64, 12)".
func imageLabel(img api.Image) string {
	var extra []string
	if img.Arch != "" {
		extra = append(extra, string(img.Arch))
	}
	if img.Version != "" {
		extra = append(extra, img.Version)
	}
	if len(extra) == 0 {
		return img.Name
	}
	return fmt.Sprintf("%s (%s)", img.Name, strings.Join(extra, ", "))
}
