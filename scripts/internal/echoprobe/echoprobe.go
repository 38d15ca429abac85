// Package echoprobe reaches a guest's echo process through a forwarded port,
// for the tests and the bench that keep a connection busy while fvm works on
// the VM.
package echoprobe

import (
	"fmt"
	"net"
	"time"
)

// Dial connects to 127.0.0.1:port once the echo process there echoes a
// byte. QEMU's user network accepts a forwarded connection before the guest
// process listens (it starts in the background, slowly under TCG) and then
// resets it: such tries are retried for up to a minute. logf hears of the
// first failed try and of the try that answered, if not the first.
func Dial(port int, logf func(format string, args ...any)) (net.Conn, error) {
	deadline := time.Now().Add(time.Minute)
	for tries := 1; ; tries++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
		if err == nil {
			buf := []byte{'x'}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err = c.Write(buf); err == nil {
				_, err = c.Read(buf)
			}
			if err == nil {
				c.SetDeadline(time.Time{})
				if tries > 1 {
					logf("the guest's echo process answered at try %d", tries)
				}
				return c, nil
			}
			c.Close()
		}
		if tries == 1 {
			logf("the guest's echo process, first try: %v", err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the guest's echo process on host port %d never answered: %w", port, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
