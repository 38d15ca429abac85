package main

import (
	"context"
	"go/types"
	"strings"
	"testing"
)

func TestBlankBodies(t *testing.T) {
	src := `package p

import "fmt"

// A comment with a brace { and a string "}".
type T struct{ A, B int }
type I interface{ M() }

var m = map[string]struct{}{"a": {}}
var s, r, raw = "}{", '}', ` + "`{`" + `
var f = func() int { return 1 }

func F[X interface{ ~int }](x X) (y struct{ N int }) {
	/* } */ fmt.Println("{", '{')
	return
}
`
	want := src
	for _, body := range []string{
		`"a": {}`,
		` return 1 `,
		"\n\t/* } */ fmt.Println(\"{\", '{')\n\treturn\n",
	} {
		want = strings.Replace(want, body, blanked(body), 1)
	}
	b := []byte(src)
	blankBodies(b)
	if string(b) != want {
		t.Fatalf("got:\n%q\nwant:\n%q", b, want)
	}
}

// [...] literals keep their length and element type: all but the last
// element become the last one's key.
func TestBlankBodiesArrays(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"var a = [...]int{1, 2, 3}\n", "var a = [...]int{2:    3}\n"},
		{"var a = [...]int{1}\n", "var a = [...]int{1}\n"},
		{"var a = [...]string{3: \"x\", 1: \"y\"}\n", "var a = [...]string{3: \"x\", 1: \"y\"}\n"},
		{
			"var tab = [...]struct{ a, b int }{\n\t{1, 2},\n\t{3, f(4, 5)},\n}\n",
			"var tab = [...]struct{ a, b int }{\n1:      \n\t{3, f(4, 5)},\n}\n",
		},
		{"var a, b = [...]byte{1, 2}, T{1, 2}\n", "var a, b = [...]byte{1: 2}, T{    }\n"},
		{"var a = [...]int{1, 2}\nvar b = T{1, 2}\n", "var a = [...]int{1: 2}\nvar b = T{    }\n"},
	} {
		b := []byte(tc.src)
		blankBodies(b)
		if string(b) != tc.want {
			t.Errorf("blankBodies(%q) = %q, want %q", tc.src, b, tc.want)
		}
	}
}

func blanked(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' {
			return r
		}
		return ' '
	}, s)
}

// Outline parsing must not change what importers see: every package-level
// object of a set of standard packages (cgo ones and crypto's big tables
// included) has the same type either way.
func TestOutlineKeepsAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("checks some standard packages in full: skipped with -short")
	}
	t.Setenv("GOWORK", "off")
	pkgs, err := listPackages(context.Background(), ".", "arm64", options{Patterns: []string{"encoding/json", "os/user", "net/netip", "crypto/ecdh"}})
	if err != nil {
		t.Fatal(err)
	}
	apis := make([]map[string]string, 2)
	for i, outline := range []bool{false, true} {
		for _, p := range pkgs {
			p.DepOnly = outline
		}
		diags, checked := checkArch(pkgs, "arm64", newParseCache(), func(s string) string { return s })
		if len(diags) > 0 {
			t.Fatalf("outline=%v: %v", outline, diags)
		}
		apis[i] = packageAPI(checked)
	}
	for key, full := range apis[0] {
		if got := apis[1][key]; got != full {
			t.Errorf("%s: outline %q, full %q", key, got, full)
		}
	}
	if len(apis[0]) < 1000 || len(apis[0]) != len(apis[1]) {
		t.Fatalf("compared %d and %d objects", len(apis[0]), len(apis[1]))
	}
}

func packageAPI(checked map[string]*types.Package) map[string]string {
	api := map[string]string{}
	for path, pkg := range checked {
		if pkg == nil {
			continue
		}
		for _, name := range pkg.Scope().Names() {
			obj := pkg.Scope().Lookup(name)
			api[path+"."+name] = types.ObjectString(obj, nil)
			if _, isType := obj.(*types.TypeName); !isType {
				continue
			}
			if named, ok := obj.Type().(*types.Named); ok {
				for m := range named.Methods() {
					api[path+"."+name+"."+m.Name()] = types.ObjectString(m, nil)
				}
			}
		}
	}
	return api
}
