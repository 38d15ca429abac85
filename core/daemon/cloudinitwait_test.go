package daemon

import "testing"

func TestCloudInitResult(t *testing.T) {
	for _, c := range []struct {
		status       int
		out          string
		want, detail string
	}{
		{0, "status: done\n", "done", ""},
		{0, "status: done (fvm-init)\n", "done", "fvm-init"},
		{1, "status: error (fvm-init)\nfvm-final.service: failed\n", "error", "status: error (fvm-init)\nfvm-final.service: failed"},
		{0, "status: disabled\n", "none", "status: disabled"},
		{2, "status: degraded done\n", "degraded", "status: degraded done"},
		{127, "bash: cloud-init: command not found", "none", "the guest has no cloud-init: nothing to wait for"},
	} {
		r := cloudInitResult(c.status, c.out)
		if r.Status != c.want || r.Detail != c.detail {
			t.Errorf("cloudInitResult(%d, %q) = %q %q, want %q %q", c.status, c.out, r.Status, r.Detail, c.want, c.detail)
		}
	}
}
