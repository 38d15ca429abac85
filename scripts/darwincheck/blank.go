package main

import (
	"bytes"
	"strconv"
)

// blankBodies overwrites, in place, the inside of every top-level {...}
// region that is not a struct or interface type (function bodies, composite
// literals, function literals) with spaces, keeping newlines so that every
// remaining position is unchanged.
//
// A literal of a [...] array type fixes the type's length by its element
// count, so it is shrunk instead: {a, b, c} becomes {2: c} (same length, same
// element type) unless it is keyed already. The standard library has such
// tables of tens of thousands of elements that would otherwise cost most of
// a run.
//
// It is a small hand-written scanner rather than go/scanner, which costs as
// much as the parse it saves: it only needs braces, brackets, commas, colons,
// the keywords struct and interface, and to step over comments, strings and
// runes.
func blankBodies(src []byte) {
	var (
		depth    int    // open braces
		keep     bool   // the outermost open brace is a struct or interface type
		array    bool   // the outermost open brace is a [...] literal
		open     int    // offset just past the outermost open brace
		ellipsis bool   // [...] seen at top level, its literal not yet opened
		word     []byte // the identifier or keyword just before, if any
		recent   []byte // the last few punctuation bytes at top level

		// Inside a [...] literal, at its own level:
		nest      int  // open parentheses and brackets
		commas    int  // element separators
		lastComma int  // offset of the last one
		prevComma int  // offset of the one before
		afterLast bool // anything after the last comma (no trailing comma)
		keyed     bool // a key: leave the literal alone
	)
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i+1 < len(src) && src[i+1] != '\n' {
				i++
			}
			continue
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := bytes.Index(src[i+2:], []byte("*/"))
			if end < 0 {
				return
			}
			i += 2 + end + 1
			continue
		case c == ' ' || c == '\t' || c == '\r':
			continue
		}
		if array && depth == 1 && c != ',' && c != '\n' && c != '}' {
			afterLast = true
		}
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipQuoted(src, i)
			word, recent = nil, nil
			continue
		case isWordByte(c):
			start := i
			for i+1 < len(src) && isWordByte(src[i+1]) {
				i++
			}
			word, recent = src[start:i+1], nil
			continue
		case c == '\n' || c == ';':
			if depth == 0 {
				ellipsis = false
			}
		case c == '{':
			if depth == 0 {
				keep = len(recent) == 0 && (string(word) == "struct" || string(word) == "interface")
				array = ellipsis && !keep
				if !keep {
					ellipsis = false // used up: a literal may follow on the line
				}
				open = i + 1
				nest, commas, keyed, afterLast = 0, 0, false, false
			}
			depth++
		case c == '}':
			if depth == 0 {
				break // unbalanced: leave it to the parser to report
			}
			depth--
			switch {
			case depth > 0 || keep:
			case array:
				last := lastComma + 1
				if !afterLast {
					last = prevComma + 1
				}
				if elems := commas + btoi(afterLast); !keyed && elems > 1 {
					shrinkArray(src[open:last], elems)
				}
			default:
				blank(src[open:i])
			}
		case array && depth == 1 && (c == '(' || c == '['):
			nest++
		case array && depth == 1 && (c == ')' || c == ']'):
			nest--
		case array && depth == 1 && nest == 0 && c == ',':
			commas++
			prevComma, lastComma = lastComma, i
			afterLast = false
		case array && depth == 1 && nest == 0 && c == ':':
			keyed = true
		}
		if depth == 0 {
			if c == ']' && string(recent) == "[..." {
				ellipsis = true
			}
			if recent = append(recent, c); len(recent) > 4 {
				recent = recent[1:]
			}
		}
		word = nil
	}
}

// shrinkArray turns the elements before the last one of a [...] literal
// (region) into the key of the last one: "a, b,\n c," → "2:      \n   ".
// The key goes in the first run of the region without a line break (a break
// after the number would end the statement); if none is long enough, the
// literal stays as it is.
func shrinkArray(region []byte, elems int) {
	key := strconv.Itoa(elems-1) + ":"
	run := 0
	for i, c := range region {
		if c == '\n' {
			run = 0
			continue
		}
		if run++; run == len(key) {
			blank(region)
			copy(region[i+1-len(key):], key)
			return
		}
	}
}

// blank replaces every byte but line breaks with a space.
func blank(b []byte) {
	for i, c := range b {
		if c != '\n' {
			b[i] = ' '
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// skipQuoted returns the offset of the closing quote of the string, raw
// string or rune starting at src[i] (or the end of src).
func skipQuoted(src []byte, i int) int {
	q := src[i]
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			if q != '`' {
				i++
			}
		case q:
			return i
		}
	}
	return len(src)
}
