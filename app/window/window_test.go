package window

import (
	"slices"
	"testing"
)

type fakeView struct {
	title  string
	events *[]string
	close  func()
}

func (v *fakeView) Load(url string) { *v.events = append(*v.events, v.title+" load "+url) }
func (v *fakeView) Front()          { *v.events = append(*v.events, v.title+" front") }

func TestSetReusesWindows(t *testing.T) {
	var events []string
	views := map[string]*fakeView{}
	s := NewSet(func(title string, closed func()) View {
		v := &fakeView{title: title, events: &events, close: closed}
		views[title] = v
		events = append(events, "make "+title)
		return v
	})
	s.Show("web1", "http://127.0.0.1:1/vm/web1/?token=a")
	s.Show("web1", "http://127.0.0.1:1/vm/web1/?token=a") // again: to the front, no reload
	s.Show("db", "http://127.0.0.1:1/vm/db/?token=b")
	s.Show("web1", "http://127.0.0.1:2/vm/web1/?token=c") // a new host: load its page
	want := []string{
		"make web1 · fvm", "web1 · fvm load http://127.0.0.1:1/vm/web1/?token=a", "web1 · fvm front",
		"web1 · fvm front",
		"make db · fvm", "db · fvm load http://127.0.0.1:1/vm/db/?token=b", "db · fvm front",
		"web1 · fvm load http://127.0.0.1:2/vm/web1/?token=c", "web1 · fvm front",
	}
	if !slices.Equal(events, want) {
		t.Errorf("events\n%q\nwant\n%q", events, want)
	}
	if s.Open() != 2 {
		t.Errorf("%d open, want 2", s.Open())
	}
	// Closing a window forgets it: the next Show makes a new one.
	views["web1 · fvm"].close()
	if s.Open() != 1 {
		t.Errorf("%d open after a close, want 1", s.Open())
	}
	events = nil
	s.Show("web1", "http://127.0.0.1:2/vm/web1/?token=c")
	if want := []string{"make web1 · fvm", "web1 · fvm load http://127.0.0.1:2/vm/web1/?token=c", "web1 · fvm front"}; !slices.Equal(events, want) {
		t.Errorf("after close: %q", events)
	}
}
