package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeSelfSigned writes a self-signed ECDSA P-256 certificate for name, valid until notAfter, and its
// key, as name.crt and name.key in dir.
func writeSelfSigned(t *testing.T, dir, name string, notAfter time.Time) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certPath, keyPath
}

// TestCheckTLSCertificates: -t refuses a key that does not match its certificate and a file that is
// missing, naming the entry; it warns for a certificate expired or expiring within 30 days, naming it,
// and still passes (exit 0): such a certificate is served.
func TestCheckTLSCertificates(t *testing.T) {
	dir := t.TempDir()
	goodCrt, goodKey := writeSelfSigned(t, dir, "good.example", time.Now().Add(365*24*time.Hour))
	_, otherKey := writeSelfSigned(t, dir, "other.example", time.Now().Add(365*24*time.Hour))
	oldCrt, oldKey := writeSelfSigned(t, dir, "old.example", time.Now().Add(-24*time.Hour))
	soonCrt, soonKey := writeSelfSigned(t, dir, "soon.example", time.Now().Add(5*24*time.Hour))
	check := func(certs ...string) (int, string, string) {
		var list []string
		for i := 0; i < len(certs); i += 2 {
			list = append(list, fmt.Sprintf("{ cert = %q, key = %q }", certs[i], certs[i+1]))
		}
		f := filepath.Join(dir, "tls.toml")
		os.WriteFile(f, []byte("[server]\nmax_connections = 1000\n[[upstream]]\nname = \"a\"\nservers = [ { addr = \"127.0.0.1:9\" } ]\n[[route]]\nupstream = \"a\"\n"+
			"[tls]\nlisten = \"127.0.0.1:8443\"\ncertificates = ["+strings.Join(list, ", ")+"]\n"), 0o644)
		var out, errb bytes.Buffer
		code := run([]string{"-t", "-config", f}, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errb := check(goodCrt, goodKey); code != 0 || !strings.HasPrefix(out, "configuration ok") || errb != "" {
		t.Fatalf("good certificate: exit %d, %q %q", code, out, errb)
	}
	if code, _, errb := check(goodCrt, otherKey); code != 1 || !strings.Contains(errb, "tls.certificates[0]") || !strings.Contains(errb, "does not match") {
		t.Fatalf("mismatched key: exit %d, %q", code, errb)
	}
	if code, _, errb := check(goodCrt, goodKey, filepath.Join(dir, "none.crt"), goodKey); code != 1 || !strings.Contains(errb, "tls.certificates[1]") || !strings.Contains(errb, "none.crt") {
		t.Fatalf("missing certificate file: exit %d, %q", code, errb)
	}
	code, out, errb := check(goodCrt, goodKey, oldCrt, oldKey, soonCrt, soonKey)
	if code != 0 || !strings.HasPrefix(out, "configuration ok") {
		t.Fatalf("expired certificates: exit %d, %q %q", code, out, errb)
	}
	if !strings.Contains(errb, "warning: tls.certificates[1]") || !strings.Contains(errb, "old.example") || !strings.Contains(errb, "expired") ||
		!strings.Contains(errb, "warning: tls.certificates[2]") || !strings.Contains(errb, "soon.example") || strings.Contains(errb, "good.example") {
		t.Fatalf("-t warnings:\n%s", errb)
	}
}

// TestCheckUpstreamTLS: -t refuses an [upstream.tls] whose ca file is missing or holds no certificate,
// or whose client key does not match its certificate, naming the key; it warns about
// insecure_skip_verify and passes; a start warns about it too (here one that then fails to bind its
// port, so that the test needs no signal).
func TestCheckUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	caCrt, _ := writeSelfSigned(t, dir, "ca.example", time.Now().Add(365*24*time.Hour))
	clientCrt, clientKey := writeSelfSigned(t, dir, "client.example", time.Now().Add(365*24*time.Hour))
	_, otherKey := writeSelfSigned(t, dir, "other.example", time.Now().Add(365*24*time.Hour))
	file := func(listen, tlsKeys string) string {
		f := filepath.Join(dir, "up.toml")
		os.WriteFile(f, []byte(fmt.Sprintf("[server]\nlisten = %q\nmax_connections = 1000\n[[upstream]]\nname = \"a\"\nservers = [ { addr = \"127.0.0.1:9\" } ]\n[upstream.tls]\n%s\n[[route]]\nupstream = \"a\"\n", listen, tlsKeys)), 0o644)
		return f
	}
	check := func(tlsKeys string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run([]string{"-t", "-config", file("127.0.0.1:8080", tlsKeys)}, &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, tc := range []struct{ keys, want string }{
		{fmt.Sprintf("ca = %q", filepath.Join(dir, "none.pem")), "upstream[0].tls.ca"},
		{fmt.Sprintf("ca = %q", clientKey), "holds no PEM certificate"},
		{fmt.Sprintf("cert = %q\nkey = %q", clientCrt, otherKey), "upstream[0].tls.cert"},
		{fmt.Sprintf("cert = %q", clientCrt), "upstream[0].tls.key: is required with cert"},
	} {
		if code, _, errb := check(tc.keys); code != 1 || !strings.Contains(errb, tc.want) {
			t.Fatalf("%s: exit %d, %q; want 1 and %q", tc.keys, code, errb, tc.want)
		}
	}
	code, out, errb := check(fmt.Sprintf("ca = %q\ncert = %q\nkey = %q", caCrt, clientCrt, clientKey))
	if code != 0 || !strings.HasPrefix(out, "configuration ok") || errb != "" {
		t.Fatalf("good files: exit %d, %q %q", code, out, errb)
	}
	// The worst-case memory counts the TLS backend connections: one per client, and the idle pools.
	if !strings.Contains(out, " + tls backend connections ") || !strings.Contains(out, "(max_connections 1000 + idle ") {
		t.Fatalf("-t's memory line without the TLS backend connections: %q", out)
	}
	const warning = "upstream[0].tls.insecure_skip_verify: the certificates of upstream \"a\" are not verified"
	if code, out, errb := check("insecure_skip_verify = true"); code != 0 || !strings.HasPrefix(out, "configuration ok") || !strings.Contains(errb, "warning: "+warning) {
		t.Fatalf("insecure_skip_verify: exit %d, %q %q", code, out, errb)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var startOut, startLog bytes.Buffer
	if code := run([]string{"-config", file(taken.Addr().String(), "insecure_skip_verify = true")}, &startOut, &startLog); code == 0 || !strings.Contains(startLog.String(), "level=WARN msg=\"upstream[0].tls.insecure_skip_verify: the certificates of upstream") {
		t.Fatalf("start: exit %d, log %q", code, startLog.String())
	}
}
