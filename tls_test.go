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
