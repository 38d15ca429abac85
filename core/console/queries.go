package console

import "bytes"

// Earlier output replayed to a new session (the boot log, the login prompt)
// holds the questions the guest asked its terminal back then: systemd 257 asks
// a serial console for its size (ESC[6n, twice) before every getty. A terminal
// that replays them answers them now, and the answers arrive at the login
// prompt as typed input ("^[[24;80R" as a user name). So replayed output loses
// the sequences that make a terminal reply; live output keeps them, since the
// guest is waiting for those answers.

const esc = 0x1b

// stripQueries returns b without the escape sequences a terminal answers:
// status and cursor reports (CSI n), device attributes (CSI c), DECREQTPARM
// (CSI x), mode and version requests (CSI $p, CSI >q, CSI ?u), window reports
// (CSI 11–21 t), DECID (ESC Z), colour and clipboard queries (OSC …;?),
// DECRQSS and XTGETTCAP (DCS $q, DCS +q) and ENQ. A sequence cut off by the
// end of b is kept.
func stripQueries(b []byte) []byte {
	if bytes.IndexByte(b, esc) < 0 && bytes.IndexByte(b, 0x05) < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if c == 0x05 {
			i++
			continue
		}
		if c != esc || i+1 >= len(b) {
			out = append(out, c)
			i++
			continue
		}
		n, query := escapeSequence(b[i:])
		if !query {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

// escapeSequence measures the sequence at the start of s (s[0] is ESC) and
// says whether a terminal answers it. An unterminated one is all of s.
func escapeSequence(s []byte) (n int, query bool) {
	switch s[1] {
	case '[':
		return csi(s)
	case ']':
		n, body := stringSequence(s)
		return n, bytes.Contains(body, []byte(";?")) || bytes.HasSuffix(body, []byte("?"))
	case 'P':
		n, body := stringSequence(s)
		return n, bytes.HasPrefix(body, []byte("$q")) || bytes.HasPrefix(body, []byte("+q"))
	case 'Z':
		return 2, true
	}
	return 2, false
}

// csi measures a control sequence ESC [ params intermediates final.
func csi(s []byte) (int, bool) {
	i := 2
	for i < len(s) && s[i] >= 0x30 && s[i] <= 0x3f {
		i++
	}
	params := s[2:i]
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++
	}
	inter := s[2+len(params) : i]
	if i >= len(s) {
		return len(s), false
	}
	if s[i] < 0x40 || s[i] > 0x7e { // malformed: end it here
		return i, false
	}
	final := s[i]
	n := i + 1
	switch {
	case len(inter) > 0:
		return n, final == 'p' && bytes.Equal(inter, []byte("$"))
	case final == 'n', final == 'c', final == 'x':
		return n, true
	case final == 'q':
		return n, bytes.HasPrefix(params, []byte(">"))
	case final == 'u':
		return n, bytes.HasPrefix(params, []byte("?"))
	case final == 't':
		first, _, _ := bytes.Cut(params, []byte(";"))
		switch string(first) {
		case "11", "13", "14", "15", "16", "18", "19", "20", "21":
			return n, true
		}
	}
	return n, false
}

// stringSequence measures an OSC or DCS string ended by BEL or ESC \ and
// returns its body.
func stringSequence(s []byte) (int, []byte) {
	for i := 2; i < len(s); i++ {
		switch {
		case s[i] == 0x07:
			return i + 1, s[2:i]
		case s[i] == esc && i+1 < len(s) && s[i+1] == '\\':
			return i + 2, s[2:i]
		}
	}
	return len(s), nil
}
