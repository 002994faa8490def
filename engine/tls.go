package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/admin"
	"switchflow/config"
	"switchflow/tlsrec"
)

// HTTPS termination (issue 22): the certificates, the shared tls.Config, -t's checks, reload, and the
// handshake counters. How a TLS connection reaches the engine is in tlsconn.go.
//
// One tls.Config serves every TLS connection for the server's life, so a session ticket that one
// connection issued resumes on any other, whatever loop its plaintext lands on. Its ticket keys are
// crypto/tls's own: generated at start, a new one every 24 hours, each accepted for 7 days
// (crypto/tls ticketKeyRotation, ticketKeyLifetime). The certificates are not in the Config: GetCertificate
// reads them from an atomic pointer that a reload swaps whole, so a handshake in flight never sees half of
// a new set.

// expiryWarning is how close to its end a certificate is warned about (-t, start, reload).
const expiryWarning = 30 * 24 * time.Hour

// certSet is one loaded [tls] certificates list: SNI picks by exact name, then by wildcard, else any;
// among those, the first the client supports (an ECDSA and an RSA certificate for the same names, as
// nginx and HAProxy serve them), else the first of them.
type certSet struct {
	certs []*tls.Certificate
	exact map[string][]*tls.Certificate // lower-case DNS name → the certificates that name it, in order
	wild  map[string][]*tls.Certificate // "example.com" → the certificates naming "*.example.com"
	warn  []string                      // certificates expired or expiring within expiryWarning
}

// loadCertSet reads every certificate and key file of list. A missing or unreadable file, a file with
// no PEM certificate or key, and a key that does not match its certificate are errors, each naming its
// entry; a certificate expired or about to expire is a warning only: it is still served (one expired name
// must not take the others down).
func loadCertSet(list []config.Certificate, now time.Time) (*certSet, error) {
	cs := &certSet{exact: map[string][]*tls.Certificate{}, wild: map[string][]*tls.Certificate{}}
	var errs []error
	if len(list) == 0 {
		return nil, errors.New("tls.certificates: at least one certificate is required")
	}
	for i, c := range list {
		key := fmt.Sprintf("tls.certificates[%d]", i)
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (cert %q, key %q): %w", key, c.Cert, c.Key, err))
			continue
		}
		leaf := pair.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
				errs = append(errs, fmt.Errorf("%s (cert %q): %w", key, c.Cert, err))
				continue
			}
			pair.Leaf = leaf
		}
		names := leaf.DNSNames
		if len(names) == 0 && leaf.Subject.CommonName != "" {
			names = []string{leaf.Subject.CommonName}
		}
		switch left := leaf.NotAfter.Sub(now); {
		case left <= 0:
			cs.warn = append(cs.warn, fmt.Sprintf("%s (cert %q, %s): the certificate expired on %s; it is still served",
				key, c.Cert, strings.Join(names, ","), leaf.NotAfter.UTC().Format(time.RFC3339)))
		case left < expiryWarning:
			cs.warn = append(cs.warn, fmt.Sprintf("%s (cert %q, %s): the certificate expires on %s, in %d days",
				key, c.Cert, strings.Join(names, ","), leaf.NotAfter.UTC().Format(time.RFC3339), int(left/(24*time.Hour))))
		}
		p := &pair
		cs.certs = append(cs.certs, p)
		for _, n := range names {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			m := cs.exact
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				m, n = cs.wild, rest
			}
			if l := m[n]; len(l) == 0 || l[len(l)-1] != p { // a name listed twice in one certificate
				m[n] = append(l, p)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cs, nil
}

// pick chooses the certificate for a ClientHello: those for its SNI name, exact, then the wildcard one
// label up, else every certificate; among them the first the client can use (its signature algorithms,
// curves and version: an RSA-only client gets the RSA certificate of a name that has an ECDSA one first),
// else the first of them, whose handshake then fails as it would have anyway.
func (cs *certSet) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	cands := cs.certs
	if n := strings.ToLower(strings.TrimSuffix(hello.ServerName, ".")); n != "" {
		if l, ok := cs.exact[n]; ok {
			cands = l
		} else if i := strings.IndexByte(n, '.'); i > 0 {
			if l, ok := cs.wild[n[i+1:]]; ok {
				cands = l
			}
		}
	}
	if len(cands) > 1 {
		for _, c := range cands {
			if hello.SupportsCertificate(c) == nil {
				return c
			}
		}
	}
	return cands[0]
}

// tlsVersion maps min_version to crypto/tls's constant.
func tlsVersion(v string) uint16 {
	if v == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// Handshake results and versions, the labels of switchflow_tls_handshakes_total.
const (
	hsOK = iota
	hsFailed
	hsTimeout
	hsResults
)

var (
	hsResultNames  = [hsResults]string{"ok", "failed", "timeout"}
	hsVersionNames = [3]string{"1.2", "1.3", "unknown"} // unknown: it failed before a version was chosen
)

func hsVersionIndex(v uint16) int {
	switch v {
	case tls.VersionTLS12:
		return 0
	case tls.VersionTLS13:
		return 1
	}
	return 2
}

// checkTLS is what -t and New check of [tls] beyond the file's own checks: that every certificate and
// key loads and matches. nil when there is no [tls].
func checkTLS(cfg *config.Config) []error {
	if cfg.TLS == nil {
		return nil
	}
	if _, err := loadCertSet(cfg.TLS.Certificates, time.Now()); err != nil {
		return []error{err}
	}
	return nil
}

// TLSWarnings names the certificates of cfg's [tls] that have expired or expire within 30 days, for -t
// (which still exits 0: they are served). nil when there is no [tls] or its files do not load (Check
// reports those).
func TLSWarnings(cfg *config.Config) []string {
	if cfg.TLS == nil {
		return nil
	}
	cs, err := loadCertSet(cfg.TLS.Certificates, time.Now())
	if err != nil {
		return nil
	}
	return cs.warn
}

// tlsReloadCerts loads the certificates of a configuration offered to Reload, before anything of it
// applies: a file whose certificates do not load is refused whole, the running set staying. nil, nil
// when cfg has no [tls].
func (s *Server) tlsReloadCerts(cfg *config.Config) (*certSet, error) {
	if cfg.TLS == nil {
		return nil, nil
	}
	cs, err := loadCertSet(cfg.TLS.Certificates, time.Now())
	if err != nil {
		return nil, err
	}
	for _, w := range cs.warn {
		s.log.Warn("tls certificate", "problem", w)
	}
	return cs, nil
}

// tlsSwapCerts makes cs the certificates of new handshakes, once the reload that loaded them applied.
// Handshakes already past GetCertificate keep the certificate they chose. Without TLS listeners
// (started without [tls]) nothing changes: adding [tls] takes a restart (RestartOnly).
func (s *Server) tlsSwapCerts(cs *certSet) {
	if s.tls != nil && cs != nil {
		s.tls.certs.Store(cs)
	}
}

// tlsRestartOnly names the [tls] settings a reload cannot apply: the listeners and min_version.
func tlsRestartOnly(was, now *config.Config) []string {
	switch {
	case was.TLS == nil && now.TLS == nil:
		return nil
	case was.TLS == nil || now.TLS == nil:
		return []string{"tls"}
	}
	var keys []string
	if !slices.Equal(was.TLS.Listen, now.TLS.Listen) {
		keys = append(keys, "tls.listen")
	}
	if was.TLS.MinVersion != now.TLS.MinVersion {
		keys = append(keys, "tls.min_version")
	}
	return keys
}

// tlsSnapshot adds the handshake counters to an admin snapshot.
func (s *Server) tlsSnapshot(snap *admin.Snapshot) {
	if s.tls == nil {
		return
	}
	snap.TLS.Enabled = true
	for r := 0; r < hsResults; r++ {
		for v := range hsVersionNames {
			n := s.tls.hs[r][v].Load()
			if v == 2 && n == 0 {
				continue // "unknown" only once something failed before a version was chosen
			}
			if r == hsOK && v == 2 {
				continue
			}
			snap.TLS.Handshakes = append(snap.TLS.Handshakes, admin.TLSHandshakes{
				Result: hsResultNames[r], Version: hsVersionNames[v], Count: n,
			})
		}
	}
}

// tlsCount counts one handshake's end.
func (t *tlsTerm) count(result int, version uint16) {
	t.hs[result][hsVersionIndex(version)].Add(1)
}

// tlsClient is what a TLS client's connection carries into the engine: gnet's context for the socket
// tlsconn.go Registers after its handshake (OnOpen), then clientConn.tls.
type tlsClient struct {
	rec      *tlsrec.Conn // the record layer, the connection's gnet Transform from OnOpen on
	term     *tlsTerm
	released atomic.Bool // its place in term.open is given back (release)
	version  uint16
	cipher   uint16
}

// release gives the connection's place among the TLS connections back, once: at OnClose, or where
// the loop never took it.
func (tc *tlsClient) release() {
	if tc.released.CompareAndSwap(false, true) {
		tc.term.open.Add(-1)
	}
}

// The record layer satisfies gnet's Transform (gnet patch 0012).
var _ gnet.Transform = (*tlsrec.Conn)(nil)

var protoHTTPS = []byte("https")

// proto is X-Forwarded-Proto's value for cc's requests.
func (cc *clientConn) proto() []byte {
	if cc.tls != nil {
		return protoHTTPS
	}
	return protoHTTP
}

// tlsAttach puts a TLS client's record layer between its socket and the engine, before anything is
// written to it (the 503 of a full server too): from here on the engine reads and writes plaintext.
// Called first in clientOpened; false when the transform could not be set (the connection is then
// closed unanswered: anything written would go out in clear). Loop only.
func (ls *loopState) tlsAttach(c gnet.Conn) bool {
	tc, ok := c.Context().(*tlsClient)
	if !ok {
		return true
	}
	tc.rec.Attach(&ls.tlsBufs)
	return c.SetTransform(tc.rec) == nil
}

// tlsOpened marks cc as a TLS client when c came through the TLS listener (its context is the
// *tlsClient tlsconn.go registered it with). Called by clientOpened before cc becomes c's context.
// Loop only.
func (ls *loopState) tlsOpened(cc *clientConn, c interface{ Context() any }) {
	if tc, ok := c.Context().(*tlsClient); ok {
		cc.tls = tc
	}
}

// appendTLSFields adds the JSON access log's tls_version and tls_cipher for a TLS client, written inside
// the line's last string value: it closes that string and leaves the last field's open, for the line's
// closing quote. Nothing for a plain client.
func appendTLSFields(out []byte, cc *clientConn) []byte {
	if cc.tls == nil {
		return out
	}
	out = append(out, `","tls_version":"`...)
	out = append(out, hsVersionNames[hsVersionIndex(cc.tls.version)]...)
	out = append(out, `","tls_cipher":"`...)
	return append(out, tls.CipherSuiteName(cc.tls.cipher)...)
}
