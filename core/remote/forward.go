package remote

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"

	"github.com/fvmhq/fvm/core/api/stream"
)

// Serve accepts connections on ln until ctx ends and carries each through a
// connection from dial (a tunnel through the host's API), both ways. A
// failed dial closes that one connection and is told to failed; serving goes
// on. It returns once ln is closed and every connection has ended.
func Serve(ctx context.Context, ln net.Listener, dial func(context.Context) (net.Conn, error), failed func(error)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t, err := dial(ctx)
			if err != nil {
				c.Close()
				if failed != nil && ctx.Err() == nil {
					failed(err)
				}
				return
			}
			done := context.AfterFunc(ctx, func() { c.Close(); t.Close() })
			defer done()
			stream.Splice(c, t)
		}()
	}
}

// ListenLoopback listens on 127.0.0.1:port (0: a free port), the only address
// fvm's tunnels ever listen on.
func ListenLoopback(port int) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

// LocalURL is the web console's address u with its host replaced by
// this machine's listener on 127.0.0.1:port (path, token and tab kept).
func LocalURL(u string, port int) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	if p.Scheme != "http" || p.Hostname() != "127.0.0.1" {
		return "", fmt.Errorf("not an http://127.0.0.1 address")
	}
	p.Host = "127.0.0.1:" + strconv.Itoa(port)
	return p.String(), nil
}
