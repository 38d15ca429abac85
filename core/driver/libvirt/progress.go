package libvirt

import "time"

// reportEvery calls progress with c's count twice a second until stopped, and
// once more at the end.
func reportEvery(c counter, phase string, total int64, progress Progress) (stop func()) {
	if progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				progress(phase, c.count(), total)
			case <-done:
				progress(phase, c.count(), total)
				return
			}
		}
	}()
	return func() { close(done); <-ended }
}
