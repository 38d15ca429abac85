package cli

import "github.com/fvmhq/fvm/core/api"

// hostColumn is `fvm ps`'s HOST column, shown when a VM of the libvirt backend
// is listed: the libvirt.hosts name it runs on ("default" for libvirt.uri's).
type hostColumn bool

func newHostColumn(vms []api.VM) hostColumn {
	for _, v := range vms {
		if v.Backend == "libvirt" {
			return true
		}
	}
	return false
}

func (h hostColumn) header() string {
	if !h {
		return ""
	}
	return "HOST\t"
}

func (h hostColumn) cell(v api.VM) string {
	switch {
	case !bool(h):
		return ""
	case v.Backend != "libvirt":
		return "-\t"
	case v.Spec.On == "":
		return "default\t"
	}
	return cleanLine(v.Spec.On) + "\t"
}
