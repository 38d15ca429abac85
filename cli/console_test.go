package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestCopyUntilDetach(t *testing.T) {
	for _, tt := range []struct{ in, sent string }{
		{"root\r\x1dignored", "root\r"},
		{"\x1d", ""},
		{"no detach key, then EOF", "no detach key, then EOF"},
	} {
		var w bytes.Buffer
		if err := copyUntilDetach(&w, strings.NewReader(tt.in)); err != nil || w.String() != tt.sent {
			t.Errorf("%q: sent %q (%v), want %q", tt.in, w.String(), err, tt.sent)
		}
	}
	// The key in a later read still detaches, and nothing after it is sent.
	var w bytes.Buffer
	r := io.MultiReader(strings.NewReader("ab"), strings.NewReader("c\x1dd"))
	if err := copyUntilDetach(&w, r); err != nil || w.String() != "abc" {
		t.Errorf("sent %q (%v), want abc", w.String(), err)
	}
}
