package cli

import "testing"

func TestParsePortPair(t *testing.T) {
	for in, want := range map[string]portPair{
		"8080":      {8080, 8080},
		"9000:80":   {9000, 80},
		":5432":     {0, 5432},
		"0:5432":    {0, 5432},
		"65535:443": {65535, 443},
	} {
		got, err := parsePortPair(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "80:0", "x", "1:2:3", "70000", "-1:80", "80:"} {
		if p, err := parsePortPair(in); err == nil {
			t.Errorf("%q accepted as %+v", in, p)
		}
	}
}
