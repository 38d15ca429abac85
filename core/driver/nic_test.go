package driver

import (
	"context"
	"errors"
	"testing"
	"time"
)

type fakeNICs struct {
	answers []NIC
	err     error
	asked   int
}

func (f *fakeNICs) NIC(context.Context) (NIC, error) {
	f.asked++
	if f.err != nil {
		return NIC{}, f.err
	}
	if f.asked <= len(f.answers) {
		return f.answers[f.asked-1], nil
	}
	return f.answers[len(f.answers)-1], nil
}

func TestAwaitGuestIPv4(t *testing.T) {
	ctx := context.Background()
	// The address comes on the third question (link-local IPv6 before it).
	f := &fakeNICs{answers: []NIC{{}, {IPs: []string{"fe80::1"}}, {IPs: []string{"fe80::1", "10.0.2.15"}}}}
	if !AwaitGuestIPv4(ctx, f) || f.asked != 3 {
		t.Errorf("with the address on the third answer: asked %d times", f.asked)
	}
	// An agent that cannot say: false at once.
	for _, f := range []*fakeNICs{{err: errors.New("no such VM")}, {answers: []NIC{{Error: "guest-network-get-interfaces: not supported"}}}} {
		t0 := time.Now()
		if AwaitGuestIPv4(ctx, f) || f.asked != 1 || time.Since(t0) > time.Second {
			t.Errorf("an agent that cannot say: asked %d times in %s", f.asked, time.Since(t0))
		}
	}
	// No address ever: false when the context ends.
	cctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	f = &fakeNICs{answers: []NIC{{IPs: []string{"fe80::1"}}}}
	t0 := time.Now()
	if AwaitGuestIPv4(cctx, f) || time.Since(t0) > 2*time.Second || f.asked < 2 {
		t.Errorf("no address: asked %d times in %s", f.asked, time.Since(t0))
	}
}

func TestNICHasIPv4(t *testing.T) {
	for ips, want := range map[string]bool{"": false, "fe80::1": false, "10.0.2.15": true, "::ffff:10.0.2.15": true, "nonsense": false} {
		n := NIC{}
		if ips != "" {
			n.IPs = []string{ips}
		}
		if n.HasIPv4() != want {
			t.Errorf("HasIPv4(%q) = %v", ips, !want)
		}
	}
}
