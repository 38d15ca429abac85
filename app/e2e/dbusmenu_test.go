package e2e

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
)

// The menu a tray app exports for panels to draw (libdbusmenu's protocol).
const dbusmenuIface = "com.canonical.dbusmenu"

// menuNode is one entry of a dbusmenu layout.
type menuNode struct {
	ID       int32
	Label    string
	Enabled  bool
	Visible  bool
	Children []*menuNode
}

func (n *menuNode) String() string {
	var b strings.Builder
	var walk func(n *menuNode, depth int)
	walk = func(n *menuNode, depth int) {
		if n.Visible && n.Label != "" {
			state := ""
			if !n.Enabled {
				state = " (disabled)"
			}
			fmt.Fprintf(&b, "%s%s%s\n", strings.Repeat("  ", depth), n.Label, state)
		}
		for _, c := range n.Children {
			if n.Visible {
				walk(c, depth+1)
			}
		}
	}
	walk(n, -1)
	return b.String()
}

// find returns the visible entry whose label matches each path element in
// turn (an element ending in "*" matches a label prefix, one starting with
// "*" a suffix).
func (n *menuNode) find(path ...string) *menuNode {
	cur := n
	for _, p := range path {
		var next *menuNode
		for _, c := range cur.Children {
			if c.Visible && labelMatches(c.Label, p) {
				next = c
				break
			}
		}
		if next == nil {
			return nil
		}
		cur = next
	}
	return cur
}

func labelMatches(label, p string) bool {
	switch {
	case strings.HasSuffix(p, "*"):
		return strings.HasPrefix(label, strings.TrimSuffix(p, "*"))
	case strings.HasPrefix(p, "*"):
		return strings.HasSuffix(label, strings.TrimPrefix(p, "*"))
	}
	return label == p
}

// dbusMenu is a tray app's exported menu.
type dbusMenu struct {
	obj dbus.BusObject
}

// findMenu looks on the bus for an object implementing dbusmenu.
func findMenu(conn *dbus.Conn) (*dbusMenu, error) {
	var names []string
	if err := conn.BusObject().Call("org.freedesktop.DBus.ListNames", 0).Store(&names); err != nil {
		return nil, err
	}
	for _, name := range names {
		if !strings.HasPrefix(name, ":") || name == conn.Names()[0] {
			continue
		}
		if path, ok := searchPath(conn, name, "/", 0); ok {
			return &dbusMenu{obj: conn.Object(name, path)}, nil
		}
	}
	return nil, fmt.Errorf("no %s object among %d bus names", dbusmenuIface, len(names))
}

func searchPath(conn *dbus.Conn, name string, path dbus.ObjectPath, depth int) (dbus.ObjectPath, bool) {
	if depth > 8 {
		return "", false
	}
	// Bounded: a connection that never answers (GTK keeps more than one)
	// must not hang the search.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var data string
	err := conn.Object(name, path).CallWithContext(ctx, "org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&data)
	if err != nil {
		return "", false
	}
	var node introspect.Node
	if err := xml.Unmarshal([]byte(data), &node); err != nil {
		return "", false
	}
	for _, i := range node.Interfaces {
		if i.Name == dbusmenuIface {
			return path, true
		}
	}
	for _, c := range node.Children {
		child := dbus.ObjectPath(strings.TrimSuffix(string(path), "/") + "/" + c.Name)
		if p, ok := searchPath(conn, name, child, depth+1); ok {
			return p, true
		}
	}
	return "", false
}

// layout reads the whole menu tree.
func (m *dbusMenu) layout() (*menuNode, error) {
	var revision uint32
	var root layoutItem
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	call := m.obj.CallWithContext(ctx, dbusmenuIface+".GetLayout", 0, int32(0), int32(-1), []string{})
	if call.Err != nil {
		return nil, call.Err
	}
	if err := call.Store(&revision, &root); err != nil {
		return nil, err
	}
	return root.node()
}

// click sends the "clicked" event a panel sends when the user picks an item.
func (m *dbusMenu) click(id int32) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.obj.CallWithContext(ctx, dbusmenuIface+".Event", 0, id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix())).Err
}

// layoutItem is dbusmenu's (ia{sv}av) layout entry.
type layoutItem struct {
	ID       int32
	Props    map[string]dbus.Variant
	Children []dbus.Variant
}

func (l layoutItem) node() (*menuNode, error) {
	n := &menuNode{ID: l.ID, Enabled: true, Visible: true}
	if v, ok := l.Props["label"]; ok {
		n.Label, _ = v.Value().(string)
	}
	if v, ok := l.Props["enabled"]; ok {
		n.Enabled, _ = v.Value().(bool)
	}
	if v, ok := l.Props["visible"]; ok {
		n.Visible, _ = v.Value().(bool)
	}
	for _, cv := range l.Children {
		var c layoutItem
		if err := dbus.Store([]any{cv.Value()}, &c); err != nil {
			return nil, fmt.Errorf("layout entry %d: %w", l.ID, err)
		}
		cn, err := c.node()
		if err != nil {
			return nil, err
		}
		n.Children = append(n.Children, cn)
	}
	return n, nil
}
