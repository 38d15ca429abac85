package remote

import (
	"io"
	"net"
)

// ServeStdio is the server's side of a remote client's connection (`fvm
// system dial-stdio`): it writes the greeting, then copies in to conn and
// conn to out until both directions end. The end of in (the client went)
// half-closes conn, so the host sees the client leave; the end of conn (the
// host closed it) ends the session.
func ServeStdio(conn net.Conn, in io.Reader, out io.Writer, greeting string) error {
	if _, err := io.WriteString(out, greeting); err != nil {
		return err
	}
	go func() {
		io.Copy(conn, in)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			conn.Close()
		}
	}()
	_, err := io.Copy(out, conn)
	conn.Close()
	// in may never end (ssh keeps its stdin open until the client goes):
	// the session ends with the host's side.
	return err
}
