package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"switchflow/tlsrec"
)

// HTTPS to backends ([upstream.tls], issue 22). The engine builds one client tls.Config per upstream from
// the configuration (roots, client certificate, server_name); NewGroup derives one per server from it, with
// the name that server is verified for and a session cache of its own, so that every connection to the
// server (pooled or new, from any loop, and the health checks) resumes the sessions the others got, and
// a session of one server is never offered to another that shares its server_name.

// sessionCacheSize is each server's ClientSessionCache capacity. crypto/tls keys a session by ServerName
// (the server's own config has one name), so one entry serves every connection to the server; a few more
// cost nothing.
const sessionCacheSize = 4

// serverTLS derives the client tls.Config of one server from its group's: ServerName is the group's
// server_name when set, else the host of the server's address as configured, addr (a name, or an IP
// address, which crypto/tls verifies against the certificate's IP SANs and does not send as SNI; for the
// servers of a name looked up, the name, not the address found).
func serverTLS(base *tls.Config, addr string) *tls.Config {
	if base == nil {
		return nil
	}
	c := base.Clone()
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	c.ClientSessionCache = tls.NewLRUClientSessionCache(sessionCacheSize)
	return c
}

// TLS returns the server's client tls.Config, nil when the upstream speaks plain HTTP. Shared by every
// loop, the dialer and the checker; crypto/tls allows that for a Config no one modifies, and its session
// cache has its own lock (taken once per handshake and per session ticket, never per request).
func (s *Server) TLS() *tls.Config { return s.tls }

// Secured is the gnet context of a backend connection the dialer Enrolled after its TLS handshake: Ctx is
// the context Dial was given, Rec the connection's record layer, Detached from the socket. In OnOpen, on
// the loop and before anything else, the handler Attaches Rec to its loop's buffers, installs it with
// Conn.SetTransform (gnet patch 12) and makes Ctx the connection's context: from then on the connection
// reads and writes plaintext, as a plain one.
type Secured struct {
	Ctx any
	Rec *tlsrec.Conn
}

// secure runs the client handshake of conf over conn, blocking (a dialer worker's call), within ctx's
// deadline, and returns the record layer Detached from conn, for the loop. A handshake that fails is a
// *HandshakeError.
func secure(ctx context.Context, conn net.Conn, conf *tls.Config) (*tlsrec.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	rec := tlsrec.Client(conn, conf)
	if err := rec.Handshake(ctx); err != nil {
		return nil, handshakeFailed(err)
	}
	rec.Detach()
	_ = conn.SetDeadline(time.Time{})
	return rec, nil
}

// HandshakeError is a TLS handshake to a backend that failed: Reason says why in a few words for the log
// and the health state ("unknown authority", "wrong name", "expired", "refused by the server", ...), Err
// is crypto/tls's own error.
type HandshakeError struct {
	Reason string
	Err    error
}

func (e *HandshakeError) Error() string { return "tls handshake: " + e.Reason + ": " + e.Err.Error() }
func (e *HandshakeError) Unwrap() error { return e.Err }

// handshakeFailed classifies err, the failure of a client handshake, as a *HandshakeError.
func handshakeFailed(err error) *HandshakeError {
	return &HandshakeError{Reason: HandshakeReason(err), Err: err}
}

// HandshakeReason names why a client handshake failed, from crypto/tls's error.
func HandshakeReason(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		op       *net.OpError
		ne       net.Error
		rhe      tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown):
		return "unknown authority"
	case errors.As(err, &hostname):
		return "wrong name"
	case errors.As(err, &invalid):
		switch invalid.Reason {
		case x509.Expired:
			return "expired or not yet valid"
		case x509.NotAuthorizedToSign:
			return "chain not authorized to sign"
		case x509.IncompatibleUsage:
			return "certificate not for server authentication"
		}
		return "invalid certificate"
	case errors.As(err, &op) && op.Op == "remote error":
		// The server sent an alert: it refused us (a client certificate it requires or does not
		// trust, no protocol or cipher in common).
		return "refused by the server (" + strings.TrimPrefix(op.Err.Error(), "tls: ") + ")"
	case errors.As(err, &rhe):
		return "not TLS (the server answered in plain text?)"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "handshake timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "closed by the server during the handshake"
	}
	return "handshake failed"
}
