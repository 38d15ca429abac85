package desktop

import (
	"slices"
	"testing"
	"time"
)

// fakeAlerter records alerts and answers with the next result.
type fakeAlerter struct {
	shown   chan Alert
	answers []AlertResult
}

func (f *fakeAlerter) Show(a Alert) (AlertResult, error) {
	f.shown <- a
	r := f.answers[0]
	f.answers = f.answers[1:]
	return r, nil
}

func nativeDesktop(answers ...AlertResult) (*Desktop, *fakeAlerter, *fakeRunner) {
	d, r := fake("darwin", nil)
	a := &fakeAlerter{shown: make(chan Alert, 10), answers: answers}
	d.SetAlerter(a)
	return d, a, r
}

// TestNativeDialogs: on macOS with an Alerter every dialog is a native alert
// (osascript's dialogs open behind other windows): the menu's last button is
// NSAlert's first (the default), its cancel button NSAlert's last.
func TestNativeDialogs(t *testing.T) {
	d, a, _ := nativeDesktop(AlertResult{Button: 0}, AlertResult{Button: 2}, AlertResult{Button: 1}, AlertResult{Button: -1})
	buttons := []string{"Cancel", "Leave Running", "Stop VMs"}
	for _, want := range []int{2, 0, 1, 0} { // default, cancel, middle, dismissed
		got, err := d.Choose("Quit fvm", "2 VMs run", buttons)
		if err != nil || got != want {
			t.Errorf("Choose = %d, %v; want %d", got, err, want)
		}
		if al := <-a.shown; !slices.Equal(al.Buttons, []string{"Stop VMs", "Leave Running", "Cancel"}) || al.Title != "Quit fvm" || !al.Critical {
			t.Errorf("alert %+v", al)
		}
	}

	d, a, _ = nativeDesktop(AlertResult{Button: 0, Text: "web2"}, AlertResult{Button: 1, Text: "ignored"})
	if name, ok, err := d.Entry("New VM", "Name:", "web1"); err != nil || !ok || name != "web2" {
		t.Errorf("Entry = %q %v %v", name, ok, err)
	}
	if al := <-a.shown; al.Input == nil || *al.Input != "web1" {
		t.Errorf("entry alert %+v", al)
	}
	if _, ok, _ := d.Entry("New VM", "Name:", "web1"); ok {
		t.Error("a cancelled entry returned ok")
	}

	d, a, _ = nativeDesktop(AlertResult{Button: 0, Item: 1}, AlertResult{Button: 1})
	if it, ok, err := d.Pick("New VM", "Image:", []string{"debian", "ubuntu"}); err != nil || !ok || it != "ubuntu" {
		t.Errorf("Pick = %q %v %v", it, ok, err)
	}
	if al := <-a.shown; !slices.Equal(al.Items, []string{"debian", "ubuntu"}) {
		t.Errorf("pick alert %+v", al)
	}
	if _, ok, _ := d.Pick("New VM", "Image:", []string{"debian"}); ok {
		t.Error("a cancelled pick returned ok")
	}

	d, a, r := nativeDesktop(AlertResult{})
	d.Error("fvm", "boom")
	select {
	case al := <-a.shown:
		if al.Message != "boom" || !al.Critical {
			t.Errorf("error alert %+v", al)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no error alert")
	}
	if len(r.ran)+len(r.started) != 0 {
		t.Errorf("osascript ran beside the native alerts: %v %v", r.ran, r.started)
	}
}
