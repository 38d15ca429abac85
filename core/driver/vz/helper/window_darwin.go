//go:build darwin && cgo

package helper

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/Code-Hex/vz/v3"
	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

// window is a VM's display: an NSWindow holding a VZVirtualMachineView, made
// on first show and reused after. Closing it only hides it (the VM runs on);
// showing it again brings the same window back. It is built with darwinkit
// (AppKit through objc messages), not vz's StartGraphicApplication, which
// replaces NSApp's delegate and quits the process when its window closes.
//
// The helper is an accessory app (no Dock icon, no menu bar); AppKit starts
// only when a window is first asked for, so a headless helper never touches
// the window server.
type window struct {
	loop *mainLoop
	vm   *vz.VirtualMachine // kept referenced while the window exists: its finalizer frees the VZVirtualMachine
	plan vzd.Plan

	mu      sync.Mutex
	started bool          // AppKit runs on the main thread
	win     appkit.Window // valid once made (main thread only)
	made    bool
}

func newWindow(loop *mainLoop, m *vz.VirtualMachine, plan vzd.Plan) *window {
	return &window{loop: loop, vm: m, plan: plan}
}

// show makes (once) and brings the window to the front, from any goroutine,
// and returns its window number.
func (w *window) show(ctx context.Context) (int, error) {
	machine, _, err := vmPointers(w.vm) // fails soft on an unknown vz layout
	if err != nil {
		return 0, err
	}
	type shown struct {
		n   int
		err error
	}
	done := make(chan shown, 1)
	task := func() { n, err := w.front(machine); done <- shown{n, err} }
	w.mu.Lock()
	first := !w.started
	w.started = true
	w.mu.Unlock()
	if first {
		w.loop.Do(func() { w.startAppKit(task) })
	} else {
		w.loop.Do(task)
	}
	select {
	case s := <-done:
		return s.n, s.err
	case <-ctx.Done():
		return 0, fmt.Errorf("display: the window did not open: %w", context.Cause(ctx))
	}
}

// startAppKit runs on the main thread: it makes the helper an accessory
// NSApplication, hands the main loop over to the main dispatch queue, queues
// first and enters AppKit's run loop for good.
func (w *window) startAppKit(first func()) {
	app := appkit.Application_SharedApplication()
	app.SetActivationPolicy(appkit.ApplicationActivationPolicyAccessory)
	main := dispatch.MainQueue()
	w.loop.Handover(main.DispatchAsync)
	main.DispatchAsync(first)
	app.Run() // does not return; the helper ends with os.Exit when the VM stops
}

// front runs on the main thread.
func (w *window) front(machine unsafe.Pointer) (n int, err error) {
	defer func() {
		if r := recover(); r != nil { // an objc message to something unexpected
			err = fmt.Errorf("display unavailable: %v", r)
		}
	}()
	if !w.made {
		if err := w.make(machine); err != nil {
			return 0, err
		}
	}
	w.win.MakeKeyAndOrderFront(nil)
	w.win.OrderFrontRegardless() // in front even before the activation below is granted
	// An accessory (LSUIElement-like) process is not activated by showing a
	// window: it must activate itself to come to the front (macOS 14's
	// cooperative activate, or the older activateIgnoringOtherApps:).
	app := appkit.Application_SharedApplication()
	if sel := objc.Sel("activate"); app.RespondsToSelector(sel) {
		objc.Call[objc.Void](app, sel)
	} else {
		app.ActivateIgnoringOtherApps(true)
	}
	runtime.KeepAlive(w.vm)
	return w.win.WindowNumber(), nil
}

// make builds the window and its VZVirtualMachineView (main thread).
func (w *window) make(machine unsafe.Pointer) error {
	viewClass := objc.GetClass("VZVirtualMachineView")
	if viewClass.Ptr() == nil {
		return fmt.Errorf("display unavailable: no VZVirtualMachineView class (macOS %d+ needed)", vzd.MinMacOS)
	}
	frame := foundation.Rect{Size: foundation.Size{Width: float64(w.plan.Display.Width), Height: float64(w.plan.Display.Height)}}
	view := objc.Call[objc.Object](viewClass, objc.Sel("alloc"))
	view = objc.Call[objc.Object](view, objc.Sel("initWithFrame:"), frame)
	if view.IsNil() {
		return fmt.Errorf("display unavailable: VZVirtualMachineView did not initialise")
	}
	objc.Call[objc.Void](view, objc.Sel("setVirtualMachine:"), machine)
	// Keyboard capture: system shortcuts (Cmd-Tab...) go to the guest while
	// the view has focus.
	objc.Call[objc.Void](view, objc.Sel("setCapturesSystemKeys:"), true)
	if sel := objc.Sel("setAutomaticallyReconfiguresDisplay:"); view.RespondsToSelector(sel) { // macOS 14+
		objc.Call[objc.Void](view, sel, true)
	}
	style := appkit.WindowStyleMaskTitled | appkit.WindowStyleMaskClosable |
		appkit.WindowStyleMaskMiniaturizable | appkit.WindowStyleMaskResizable
	win := appkit.NewWindowWithContentRectStyleMaskBackingDefer(frame, style, appkit.BackingStoreBuffered, false)
	objc.Retain(&win)
	win.SetReleasedWhenClosed(false) // closing hides it; show brings the same window back
	win.SetTitle(w.plan.Name + " — fvm")
	v := appkit.ViewFrom(view.Ptr())
	win.SetContentView(v)
	win.MakeFirstResponder(v)
	win.Center()
	w.win, w.made = win, true
	return nil
}
