package sshx

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backoff between readiness attempts: short at first because a guest that is
// almost up should be noticed at once, capped so a slow boot costs little.
const (
	waitFirstDelay = 100 * time.Millisecond
	waitMaxDelay   = time.Second
)

// Up returns t for a guest known to be up (its agent answered on a cold
// boot): an sshd that listens but is slow to say its version (under TCG a
// socket-activated sshd starts on an empty translation cache while the rest
// of the boot runs) is waited for up to HandshakeTimeout. Giving up after
// t.Timeout would leave the guest serving an attempt nobody waits for, and
// the next attempt would start a second sshd beside it.
func (t Target) Up() Target {
	t.Timeout = max(t.Timeout, HandshakeTimeout)
	return t
}

// WaitReady polls t until an SSH handshake and login succeed and returns the
// connected client. Each attempt is bounded by t.Timeout (DefaultTimeout when 0);
// onAttempt, if set, sees each failed attempt's error. It gives up when ctx ends,
// with an error wrapping ctx's and the last failure, and at once on a host-key
// mismatch, which waiting cannot fix.
//
// Once an attempt was closed without a word (errUnheard: the guest's network
// is up and nothing listens yet), a server that stays silent is a listening
// sshd that is slow to start (a booting TCG guest's systemd and sshd compete
// with the rest of the boot), not a guest whose network is not up: the
// attempts from then on wait HandshakeTimeout for its first word instead of
// giving up after t.Timeout and starting another sshd beside the abandoned one.
func WaitReady(ctx context.Context, t Target, onAttempt func(err error)) (*Client, error) {
	delay := waitFirstDelay
	if t.Poll > 0 {
		delay = t.Poll
	}
	for {
		c, err := Dial(ctx, t)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, errUnheard) && t.Timeout < HandshakeTimeout {
			t.Timeout = HandshakeTimeout
		}
		if errors.Is(err, ErrHostKeyMismatch) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ssh %s not ready: %w (last attempt: %v)", t.Addr, ctx.Err(), err)
		}
		if onAttempt != nil {
			onAttempt(err)
		}
		tm := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			tm.Stop()
			return nil, fmt.Errorf("ssh %s not ready: %w (last attempt: %v)", t.Addr, ctx.Err(), err)
		case <-tm.C:
		}
		if t.Poll == 0 {
			delay = min(delay*2, waitMaxDelay)
		}
	}
}
