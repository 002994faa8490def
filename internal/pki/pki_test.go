package pki

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

// A leaf from the intermediate loads as a server loads it (chain file and key), carries the
// intermediate, verifies against its root only through that intermediate, and not against another
// authority's root; a leaf from the root verifies alone. For both kinds.
func TestChainVerifies(t *testing.T) {
	for _, kind := range []Kind{ECDSA, RSA} {
		t.Run(string(kind), func(t *testing.T) {
			exp := time.Now().Add(time.Hour)
			a, err := New(kind, "test", exp)
			if err != nil {
				t.Fatal(err)
			}
			other, err := New(kind, "other", exp)
			if err != nil {
				t.Fatal(err)
			}
			l, err := a.Leaf([]string{"a.example", "127.0.0.1"}, exp, true, x509.ExtKeyUsageServerAuth)
			if err != nil {
				t.Fatal(err)
			}
			keyPEM, err := l.KeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.X509KeyPair(l.ChainPEM(), keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			if len(pair.Certificate) != 2 {
				t.Fatalf("the chain file holds %d certificates, want the leaf and the intermediate", len(pair.Certificate))
			}
			switch k := pair.PrivateKey.(type) {
			case *ecdsa.PrivateKey:
				if kind != ECDSA || k.Curve.Params().Name != "P-256" {
					t.Fatalf("%s: ECDSA key on %s", kind, k.Curve.Params().Name)
				}
			case *rsa.PrivateKey:
				if kind != RSA || k.N.BitLen() != 2048 {
					t.Fatalf("%s: RSA key of %d bits", kind, k.N.BitLen())
				}
			}
			roots, wrong := x509.NewCertPool(), x509.NewCertPool()
			if !roots.AppendCertsFromPEM(a.RootPEM()) || !wrong.AppendCertsFromPEM(other.RootPEM()) {
				t.Fatal("root PEM does not parse")
			}
			inters := x509.NewCertPool()
			inters.AddCert(l.Chain[0])
			for _, name := range []string{"a.example", "127.0.0.1"} {
				if _, err := l.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: name}); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			if _, err := l.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "a.example"}); err == nil {
				t.Error("verified without the intermediate")
			}
			if _, err := l.Cert.Verify(x509.VerifyOptions{Roots: wrong, Intermediates: inters, DNSName: "a.example"}); err == nil {
				t.Error("verified against another authority's root")
			}
			if _, err := l.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: "b.example"}); err == nil {
				t.Error("verified for a name it does not have")
			}
			direct, err := a.Leaf([]string{"b.example"}, exp, false, x509.ExtKeyUsageServerAuth)
			if err != nil {
				t.Fatal(err)
			}
			if len(direct.Chain) != 0 || direct.Cert.SerialNumber.Int64() != a.LastSerial() {
				t.Fatalf("a leaf from the root: chain %d, serial %v, last %d", len(direct.Chain), direct.Cert.SerialNumber, a.LastSerial())
			}
			if _, err := direct.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "b.example"}); err != nil {
				t.Error(err)
			}
		})
	}
}
