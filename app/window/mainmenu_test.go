package window

import (
	"strings"
	"testing"
)

// TestMainMenuKeys: the shortcuts a console window needs are there, each
// once, sent to the first responder by their standard selectors.
func TestMainMenuKeys(t *testing.T) {
	want := map[string]string{"c": "copy:", "v": "paste:", "x": "cut:", "a": "selectAll:", "w": "performClose:", "z": "undo:", "Z": "redo:", "m": "performMiniaturize:"}
	seen := map[string]string{}
	menus := MainMenu()
	if len(menus) < 2 || menus[0].Title != "fvm" {
		t.Fatalf("the first menu must be the application menu: %+v", menus)
	}
	for _, m := range menus {
		for _, it := range m.Items {
			if it.Title == "" {
				continue
			}
			if !strings.HasSuffix(it.Action, ":") {
				t.Errorf("%s: action %q is not a one-argument selector", it.Title, it.Action)
			}
			if prev, dup := seen[it.Key]; dup {
				t.Errorf("key %q is both %s and %s", it.Key, prev, it.Action)
			}
			seen[it.Key] = it.Action
		}
	}
	for k, a := range want {
		if seen[k] != a {
			t.Errorf("Cmd-%s is %q, want %q", k, seen[k], a)
		}
	}
	if _, quit := seen["q"]; quit {
		t.Error("Cmd-Q in the main menu would quit the host without the tray's Quit dialog")
	}
}
