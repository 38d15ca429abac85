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
		{"reidentified web2 " + id + "\n", 0, true},
		{"reidentified web1 " + id + "\n", 0, false},                       // the template's name
		{"reidentified web2 fedcba98765432100123456789abcdef\n", 0, false}, // the template's machine id
		{"reidentified web2 " + id + "\n", 1, false},
		{"reidentified web2\n", 0, false},
		{"reidentified web2 " + id + "\nmore\n", 0, false},
		{"web2 " + id + "\n", 0, false},
		{"", 0, false},
	} {
		if err := checkIdentity(c.out, c.status, "web2", id); (err == nil) != c.ok {
			t.Errorf("checkIdentity(%q, %d): %v, want ok=%v", c.out, c.status, err, c.ok)
		}
	}
}
