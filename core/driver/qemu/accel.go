package qemu

import (
	"fmt"

	"github.com/fvmhq/fvm/core/vm"
)

// Accelerators as QEMU names them.
const (
	AccelKVM = "kvm"
	AccelHVF = "hvf"
	AccelTCG = "tcg"
)

// HostProbe holds the host facts acceleration depends on. ProbeHost fills it;
// tests build it by hand, which keeps DetectAccel a pure function.
type HostProbe struct {
	OS   string // runtime.GOOS
	Arch string // the host's (vm.HostArch)
	// KVMErr says why /dev/kvm cannot be opened read-write; nil when it can.
	KVMErr error
	// Modules lists which of kvm_intel, kvm_amd and kvm_pvm are in /sys/module.
	Modules map[string]bool
	// HVF reports kern.hv_support=1 on macOS.
	HVF bool
}

// DetectAccel picks the accelerator for a guest of the host's own architecture and,
// when it falls back to TCG, a one-line notice saying why.
func DetectAccel(p HostProbe) (accel, notice string) {
	accel, why := detectAccel(p)
	if why != "" {
		notice = "using TCG software emulation (slow): " + why
	}
	return accel, notice
}

// KVMUnusableHere says why KVM on this machine cannot boot a standard
// guest ("" when it can): for a backend that runs QEMU through another
// program on this machine (libvirt's local daemon, which offers KVM
// wherever /dev/kvm exists).
func KVMUnusableHere() string {
	p := ProbeHost()
	if p.OS != "linux" {
		return ""
	}
	return kvmUnusable(p)
}

// detectAccel is DetectAccel with the bare reason for not accelerating.
func detectAccel(p HostProbe) (accel, why string) {
	switch p.OS {
	case "linux":
		if why := kvmUnusable(p); why != "" {
			return AccelTCG, why
		}
		return AccelKVM, ""
	case "darwin":
		if !p.HVF {
			return AccelTCG, "Hypervisor.framework is unavailable (sysctl kern.hv_support is not 1)"
		}
		return AccelHVF, ""
	}
	return AccelTCG, "no hardware acceleration on " + p.OS
}

// kvmUnusable explains why KVM cannot boot a standard guest here, or returns "".
func kvmUnusable(p HostProbe) string {
	if p.KVMErr != nil {
		return fmt.Sprintf("KVM is unavailable (%v)", p.KVMErr)
	}
	// A vendor module needs hardware virtualisation, so it is the reliable sign of real KVM.
	if p.Modules["kvm_intel"] || p.Modules["kvm_amd"] {
		return ""
	}
	if p.Modules["kvm_pvm"] {
		return "/dev/kvm is backed by kvm_pvm, a paravirtual nested hypervisor on which standard guest kernels hang at boot"
	}
	if p.Arch == "amd64" {
		return "neither kvm_intel nor kvm_amd is loaded, so what backs /dev/kvm is unknown (force it with --accel kvm)"
	}
	return "" // arm64 and others: KVM is built into the kernel, no vendor module
}

// ResolveAccel turns the spec's request (auto|kvm|hvf|tcg, "" = auto) into the accelerator
// for a guest of arch. An explicit request the host cannot honour is an error naming why.
func ResolveAccel(requested string, guest vm.Arch, p HostProbe) (accel, notice string, err error) {
	native := string(guest) == p.Arch
	switch requested {
	case "", "auto":
		if !native {
			return AccelTCG, fmt.Sprintf("using TCG software emulation (slow): %s guest on an %s host", guest, p.Arch), nil
		}
		accel, notice = DetectAccel(p)
		return accel, notice, nil
	case AccelTCG:
		return AccelTCG, "", nil
	case AccelKVM, AccelHVF:
		want := map[string]string{AccelKVM: "linux", AccelHVF: "darwin"}[requested]
		var why string
		switch {
		case p.OS != want:
			why = fmt.Sprintf("%s is only available on %s hosts, this is %s", requested, want, p.OS)
		case !native:
			why = fmt.Sprintf("it cannot run an %s guest on an %s host", guest, p.Arch)
		case requested == AccelKVM && p.KVMErr != nil:
			why = kvmUnusable(p)
		case requested == AccelKVM && p.Modules["kvm_pvm"] && !p.Modules["kvm_intel"] && !p.Modules["kvm_amd"]:
			why = kvmUnusable(p)
		case requested == AccelHVF && !p.HVF:
			why = "Hypervisor.framework is unavailable (sysctl kern.hv_support is not 1)"
		}
		if why != "" {
			return "", "", fmt.Errorf("--accel %s: %s: use --accel auto or tcg", requested, why)
		}
		return requested, "", nil
	}
	return "", "", fmt.Errorf("--accel %q is unknown: use auto, kvm, hvf or tcg", requested)
}
