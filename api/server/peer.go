package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"golang.org/x/sys/unix"
)

// peer is who is on the other end of a Unix socket connection, as the
// kernel saw it at connect time.
type peer struct {
	uid, gid uint32
	pid      int32
}

type peerKey struct{}

// connContext records the connection's peer credentials for the request
// log. Connections other than Unix sockets (tests over TCP) carry none.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	p, err := peerCred(uc)
	if err != nil {
		s.log.WarnContext(ctx, "read peer credentials", slog.Any("error", err))
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, p)
}

func peerFrom(ctx context.Context) (peer, bool) {
	p, ok := ctx.Value(peerKey{}).(peer)
	return p, ok
}

func peerCred(c *net.UnixConn) (peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return peer{}, fmt.Errorf("raw conn: %w", err)
	}
	var (
		cred    *unix.Ucred
		credErr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{}, fmt.Errorf("raw conn control: %w", err)
	}
	if credErr != nil {
		return peer{}, fmt.Errorf("getsockopt SO_PEERCRED: %w", credErr)
	}
	return peer{uid: cred.Uid, gid: cred.Gid, pid: cred.Pid}, nil
}
