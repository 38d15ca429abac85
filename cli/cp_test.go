package cli

import (
	"strings"
	"testing"
)

func TestParseCpArgs(t *testing.T) {
	for _, tc := range []struct {
		a, b          string
		svm, sp, dvm  string
		dp, wantError string
	}{
		{"./dir", "web1:/tmp/", "", "./dir", "web1", "/tmp/", ""},
		{"web1:/var/log/syslog", ".", "web1", "/var/log/syslog", "", ".", ""},
		{"web1:", "/tmp/x", "web1", ".", "", "/tmp/x", ""},
		{"/abs/a:b", "web1:x", "", "/abs/a:b", "web1", "x", ""},
		{"Bad_Name:x", "web1:y", "", "Bad_Name:x", "web1", "y", ""},
		{"a", "b", "", "", "", "", "neither"},
		{"w1:a", "w2:b", "", "", "", "", "both"},
		{"", "w:b", "", "", "", "", "empty"},
	} {
		s, d, err := parseCpArgs(tc.a, tc.b)
		if tc.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Errorf("%s %s: %v, want %q", tc.a, tc.b, err, tc.wantError)
			}
			continue
		}
		if err != nil || s.vm != tc.svm || s.path != tc.sp || d.vm != tc.dvm || d.path != tc.dp {
			t.Errorf("%s %s: %+v %+v %v", tc.a, tc.b, s, d, err)
		}
	}
}
