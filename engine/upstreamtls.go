package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/panjf2000/gnet/v2"

	"switchflow/config"
	"switchflow/tlsrec"
	"switchflow/upstream"
)

// HTTPS to backends ([upstream.tls], issue 22): the client tls.Config of each upstream, built from its
// files when a table is built (start and every reload, so a reload rereads the CA and client certificate
// files for the connections opened after it), what -t checks of them, and the installation of a new
// connection's record layer on its loop. The handshake runs in the dialer workers (upstream/dialer.go);
// each server gets its own copy of the Config, with its name and its session cache (upstream/tls.go).
// From OnOpen on, a TLS backend connection reads and writes plaintext through its record layer
// (tlsrec, gnet's Conn.SetTransform), and the engine treats it as any backend connection: pooled, reused,
// dropped when the backend closes it, timed; only never spliced (trySplice).

// upstreamTLS builds the client tls.Config of one upstream's [upstream.tls]; nil, nil without one. key
// ("upstream[0].tls") names the upstream in errors. The roots are the ca file's certificates, or the
// system's when ca is empty; the client certificate and its key, when given, are sent to servers that ask
// for one (mutual TLS). TLS 1.2 at least, and ALPN offers http/1.1 only: SwitchFlow speaks HTTP/1.1 to
// backends, and a server that would pick h2 must not think it may.
func upstreamTLS(ut *config.UpstreamTLS, key string) (*tls.Config, error) {
	if ut == nil {
		return nil, nil
	}
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"http/1.1"},
		ServerName:         strings.TrimSuffix(ut.ServerName, "."),
		InsecureSkipVerify: ut.InsecureSkipVerify, //nolint:gosec // configured, and warned about at -t and start
	}
	var errs []error
	if ut.CA != "" {
		pool, err := loadRoots(ut.CA)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.ca (%q): %w", key, ut.CA, err))
		}
		conf.RootCAs = pool
	}
	if ut.Cert != "" || ut.Key != "" {
		pair, err := tls.LoadX509KeyPair(ut.Cert, ut.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.cert (cert %q, key %q): %w", key, ut.Cert, ut.Key, err))
		} else {
			conf.Certificates = []tls.Certificate{pair}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return conf, nil
}

// secureOpened runs in OnOpen of a backend connection the dialer Enrolled after its TLS handshake: the
// record layer is installed before anything is read or written (gnet then runs Inbound(nil) for the
// bytes crypto/tls read past the handshake, a TLS 1.3 session ticket), and the connection goes on as a
// plain one. Loop only.
func (ls *loopState) secureOpened(be *backendConn, rec *tlsrec.Conn, c gnet.Conn) {
	c.SetContext(be)
	rec.Attach(&ls.tlsBufs) // the loop's record-layer scratch, shared with its TLS clients
	if err := c.SetTransform(rec); err != nil {
		// Not in this build (level-triggered, Linux): the connection cannot carry TLS. Nothing was sent.
		c.SetContext(nil)
		_ = c.Close()
		ls.dialFailed(be, fmt.Errorf("the event loop cannot carry TLS: %w", err))
		return
	}
	ls.backendOpened(be, c)
}

// tlsAlertBeforeHead logs the alert that ended a TLS backend connection before its response head: with
// TLS 1.3 a server checks the client certificate after the client's side of the handshake has ended, so
// its refusal ("certificate required", "unknown ca") arrives as an alert on the first read, not as a
// failed handshake in the dialer; the request fails as for a backend that closed before its head, and
// the log says why. Loop only.
func (ls *loopState) tlsAlertBeforeHead(be *backendConn, err error) {
	var op *net.OpError
	if be.srv.TLS() == nil || !errors.As(err, &op) || op.Op != "remote error" {
		return
	}
	ls.s.log.Warn("upstream tls connection refused", "upstream", be.srv.Upstream, "server", be.srv.Name,
		"server_name", be.srv.TLS().ServerName, "reason", upstream.HandshakeReason(err), "error", err)
}

// loadRoots reads a PEM file of root certificates; a file that holds none is an error, so a key file
// or a DER file named by mistake is caught by -t rather than at the first handshake.
func loadRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("the file holds no PEM certificate")
	}
	return pool, nil
}

// checkUpstreamTLS is what -t and New check of every [upstream.tls] beyond the file's own checks: that
// the ca file is readable and holds certificates, and that the client certificate and key load and
// match.
func checkUpstreamTLS(cfg *config.Config) []error {
	var errs []error
	for i := range cfg.Upstreams {
		if _, err := upstreamTLS(cfg.Upstreams[i].TLS, fmt.Sprintf("upstream[%d].tls", i)); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
