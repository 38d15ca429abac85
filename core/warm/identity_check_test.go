package warm

import "testing"

// TestCheckIdentity: a clone counts as re-identified only when the guest
// reports its new name and machine id, and nothing else.
func TestCheckIdentity(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		out    string
		status int
		ok     bool
	}{
		{"web2\n" + id + "\n", 0, true},
		{"web1\n" + id + "\n", 0, false},                       // the template's name
		{"web2\nfedcba98765432100123456789abcdef\n", 0, false}, // the template's machine id
		{"web2\n" + id + "\n", 1, false},
		{"web2\n", 0, false},
		{"web2\n" + id + "\nmore\n", 0, false},
		{"", 0, false},
	} {
		if err := checkIdentity(c.out, c.status, "web2", id); (err == nil) != c.ok {
			t.Errorf("checkIdentity(%q, %d): %v, want ok=%v", c.out, c.status, err, c.ok)
		}
	}
}
