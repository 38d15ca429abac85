package vm

import (
	"encoding/json"
	"testing"
)

// FuzzSpecJSON: any spec.json, however damaged, is either refused or gives a
// spec that validates or fails with an error, never a panic.
func FuzzSpecJSON(f *testing.F) {
	f.Add([]byte(`{"name":"web1","image":"debian","arch":"amd64","cpus":2,"memoryMiB":2048,"diskBytes":21474836480,"user":"fvm"}`))
	f.Add([]byte(`{"name": "to`))
	f.Add([]byte(`{"ports":[{"hostIP":"0.0.0.0","hostPort":8080,"guestPort":80}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Spec
		if json.Unmarshal(b, &s) != nil {
			return
		}
		_ = s.Validate()
		if _, err := json.Marshal(s); err != nil {
			t.Fatalf("a parsed spec does not marshal: %v", err)
		}
	})
}

// FuzzNames: a valid VM name is a safe path element.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"web1", "a", "-a", "a/b", "..", "brave-otter"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateName(s) != nil {
			return
		}
		for _, c := range s {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') || len(s) > MaxNameLen {
				t.Fatalf("ValidateName accepted %q", s)
			}
		}
	})
}
