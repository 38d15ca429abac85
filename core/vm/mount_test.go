package vm

import (
	"strings"
	"testing"
)

func TestParseMount(t *testing.T) {
	for in, want := range map[string]Mount{
		"/src":            {HostPath: "/src", GuestPath: "/src"},
		"/src:/work":      {HostPath: "/src", GuestPath: "/work"},
		"/src:/work:ro":   {HostPath: "/src", GuestPath: "/work", ReadOnly: true},
		"/src:ro":         {HostPath: "/src", GuestPath: "/src", ReadOnly: true},
		"/src:/w:rw":      {HostPath: "/src", GuestPath: "/w"},
		"rel/dir":         {HostPath: "/home/u/rel/dir", GuestPath: "/home/u/rel/dir"},
		"./x/../y:/mnt/y": {HostPath: "/home/u/y", GuestPath: "/mnt/y"},
	} {
		got, err := ParseMount(in, "/home/u")
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"":              "no host path",
		"/a:/b:/c":      "too many colons",
		"/a:rel":        "absolute",
		"/a:/":          "break the guest",
		"/a:/etc":       "break the guest",
		"/a:/x y":       "spaces",
		"/a:/$(reboot)": "$",
	} {
		if _, err := ParseMount(in, "/home/u"); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v, want %q", in, err, why)
		}
	}
	s := Spec{Name: "a", Image: "i", Arch: AMD64, CPUs: 1, MemoryMiB: 512, DiskBytes: 2 << 30, User: "fvm",
		Mounts: []Mount{{HostPath: "/a", GuestPath: "/m"}, {HostPath: "/b", GuestPath: "/m"}}}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "two shares") {
		t.Errorf("duplicate guest path: %v", err)
	}
}
