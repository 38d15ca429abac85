package cli

import (
	"strings"
	"unicode"
)

// clean makes text that came from elsewhere (the host, and through it
// upstream servers, image files, guests) safe to print: control characters
// (escape sequences could rewrite the terminal) become visible \xNN or \u
// escapes; newlines and tabs stay.
func clean(s string) string {
	if strings.IndexFunc(s, isUnsafe) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == utf8RuneError:
			b.WriteString("\\ufffd")
		case isUnsafe(r):
			if r < 0x100 {
				b.WriteString("\\x" + hex2(byte(r)))
			} else {
				b.WriteString("\\u" + hex2(byte(r>>8)) + hex2(byte(r)))
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

const utf8RuneError = '\uFFFD'

func isUnsafe(r rune) bool {
	return r != '\n' && r != '\t' && (unicode.IsControl(r) || r == 0x2028 || r == 0x2029 || r == utf8RuneError ||
		(r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)) // bidi overrides reorder what is shown
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

// cleanLine is clean for one table cell or line: newlines and tabs escaped too.
func cleanLine(s string) string {
	return strings.NewReplacer("\n", "\\n", "\t", "\\t").Replace(clean(s))
}
