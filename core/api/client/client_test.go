package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// A request the host is still answering when the caller's deadline passes
// ends with that deadline, not with "cannot reach the fvm host" (the host was
// reached: a long wait for SSH is not a host that is down).
func TestDeadlineWhileAnsweringIsTheCallers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fvm.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	defer close(release)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = New(sock).Wait(ctx, "vm1", api.WaitRequest{For: api.WaitSSH})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	var he *HostError
	if errors.As(err, &he) {
		t.Fatalf("a host that answers slowly is called unreachable: %v", err)
	}
}
