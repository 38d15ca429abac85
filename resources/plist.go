package resources

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// DecodePlist is a strict decoder for XML property lists, for the tests of
// the bundle's plists (here and in scripts/mkbundle): it returns map[string]any, []any, string, int64, float64, bool, time.Time or
// []byte, and fails on anything a plist may not contain (stray text, unknown
// elements, duplicate keys, a key without a value, trailing content).
func DecodePlist(data []byte) (any, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	root, end, err := nextStart(d)
	if err != nil {
		return nil, err
	}
	if end || root.Name.Local != "plist" {
		return nil, errors.New("no <plist> root element")
	}
	if v := attr(root, "version"); v != "1.0" {
		return nil, fmt.Errorf("<plist version=%q>, want 1.0", v)
	}
	se, end, err := nextStart(d)
	if err != nil {
		return nil, err
	}
	if end {
		return nil, errors.New("empty <plist>")
	}
	v, err := decodeValue(d, se)
	if err != nil {
		return nil, err
	}
	if _, end, err := nextStart(d); err != nil || !end {
		return nil, fmt.Errorf("<plist> holds more than one value (err %v)", err)
	}
	if _, _, err := nextStart(d); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("content after </plist> (err %v)", err)
	}
	return v, nil
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// nextStart returns the next start element, or end=true at an end element,
// skipping whitespace, comments, the XML declaration and the DOCTYPE.
func nextStart(d *xml.Decoder) (se xml.StartElement, end bool, err error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return se, false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, false, nil
		case xml.EndElement:
			return se, true, nil
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return se, false, fmt.Errorf("stray text %q", t)
			}
		}
	}
}

// text reads the character data of a leaf element up to its end.
func text(d *xml.Decoder, se xml.StartElement) (string, error) {
	var s string
	if err := d.DecodeElement(&s, &se); err != nil {
		return "", fmt.Errorf("<%s>: %w", se.Name.Local, err)
	}
	return s, nil
}

func decodeValue(d *xml.Decoder, se xml.StartElement) (any, error) {
	switch se.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			k, end, err := nextStart(d)
			if err != nil {
				return nil, err
			}
			if end {
				return m, nil
			}
			if k.Name.Local != "key" {
				return nil, fmt.Errorf("<dict> holds <%s> where a <key> belongs", k.Name.Local)
			}
			key, err := text(d, k)
			if err != nil {
				return nil, err
			}
			if _, dup := m[key]; dup {
				return nil, fmt.Errorf("duplicate key %q", key)
			}
			vs, end, err := nextStart(d)
			if err != nil {
				return nil, err
			}
			if end {
				return nil, fmt.Errorf("key %q has no value", key)
			}
			if m[key], err = decodeValue(d, vs); err != nil {
				return nil, fmt.Errorf("key %q: %w", key, err)
			}
		}
	case "array":
		a := []any{}
		for {
			vs, end, err := nextStart(d)
			if err != nil {
				return nil, err
			}
			if end {
				return a, nil
			}
			v, err := decodeValue(d, vs)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case "true", "false":
		s, err := text(d, se)
		if err != nil || s != "" {
			return nil, fmt.Errorf("<%s/> must be empty (err %v)", se.Name.Local, err)
		}
		return se.Name.Local == "true", nil
	}
	s, err := text(d, se)
	if err != nil {
		return nil, err
	}
	switch se.Name.Local {
	case "string":
		return s, nil
	case "integer":
		return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	case "real":
		return strconv.ParseFloat(strings.TrimSpace(s), 64)
	case "date":
		return time.Parse(time.RFC3339, strings.TrimSpace(s))
	case "data":
		return base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	}
	return nil, fmt.Errorf("unknown plist element <%s>", se.Name.Local)
}
