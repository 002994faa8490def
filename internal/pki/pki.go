// Package pki makes the certificates that the tests and the benchmark harness use, at run time: a root,
// an intermediate it signs, and leaves signed by either, with ECDSA P-256 or RSA 2048 keys, written as
// PEM the way servers load them (a leaf's file holds its chain after it when it comes from the
// intermediate). It is for tests and benchmarks only: keys are made fresh and never kept.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Kind is a key type: ECDSA P-256 or RSA 2048.
type Kind string

const (
	ECDSA Kind = "ecdsa"
	RSA   Kind = "rsa"
)

// Authority is a root and an intermediate signed by it, both of one Kind, that issue leaves.
type Authority struct {
	Kind     Kind
	Root     *x509.Certificate
	Inter    *x509.Certificate
	rootKey  crypto.Signer
	interKey crypto.Signer
	serial   int64
}

// Leaf is an issued certificate, its key, and the intermediate when the intermediate signed it.
type Leaf struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate // what a server sends after the leaf: the intermediate, or nothing
}

// New makes a root ("NAME root") and an intermediate ("NAME intermediate"), valid from two days ago to
// notAfter.
func New(kind Kind, name string, notAfter time.Time) (*Authority, error) {
	a := &Authority{Kind: kind}
	var err error
	if a.Root, a.rootKey, err = a.issue(name+" root", nil, notAfter, nil, nil, true, 0); err != nil {
		return nil, err
	}
	if a.Inter, a.interKey, err = a.issue(name+" intermediate", nil, notAfter, a.Root, a.rootKey, true, 0); err != nil {
		return nil, err
	}
	return a, nil
}

// Leaf issues a certificate for names (DNS names, and IP addresses where a name parses as one), the
// first also its common name, for usage (x509.ExtKeyUsageServerAuth or ClientAuth), from the
// intermediate when viaInter, else from the root.
func (a *Authority) Leaf(names []string, notAfter time.Time, viaInter bool, usage x509.ExtKeyUsage) (*Leaf, error) {
	parent, pk := a.Root, a.rootKey
	if viaInter {
		parent, pk = a.Inter, a.interKey
	}
	c, key, err := a.issue(names[0], names, notAfter, parent, pk, false, usage)
	if err != nil {
		return nil, err
	}
	l := &Leaf{Cert: c, Key: key}
	if viaInter {
		l.Chain = []*x509.Certificate{a.Inter}
	}
	return l, nil
}

// LastSerial is the serial number of the certificate issued last.
func (a *Authority) LastSerial() int64 { return a.serial }

// RootPEM is the root certificate in PEM: what a client verifies against.
func (a *Authority) RootPEM() []byte { return CertPEM(a.Root) }

// CertPEM encodes certificates in PEM, one block each, in order.
func CertPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// ChainPEM is the leaf and then its chain, in PEM: a server's certificate file.
func (l *Leaf) ChainPEM() []byte { return CertPEM(append([]*x509.Certificate{l.Cert}, l.Chain...)...) }

// KeyPEM is the leaf's key in PEM: SEC 1 ("EC PRIVATE KEY") for ECDSA, PKCS #8 ("PRIVATE KEY") for RSA.
func (l *Leaf) KeyPEM() ([]byte, error) {
	if k, ok := l.Key.(*ecdsa.PrivateKey); ok {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(l.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func (a *Authority) newKey() (crypto.Signer, error) {
	switch a.Kind {
	case ECDSA:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("pki: key kind %q: want %q or %q", a.Kind, ECDSA, RSA)
}

// issue makes a certificate with a new key, signed by parent (self-signed when parent is nil).
func (a *Authority) issue(cn string, names []string, notAfter time.Time, parent *x509.Certificate, parentKey crypto.Signer,
	ca bool, usage x509.ExtKeyUsage) (*x509.Certificate, crypto.Signer, error) {
	key, err := a.newKey()
	if err != nil {
		return nil, nil, err
	}
	a.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(a.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if a.Kind == RSA && !ca {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment // TLS 1.2 RSA key exchange, which some clients still check for
	}
	for _, n := range names { // an IP address goes where crypto/tls verifies IP addresses
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = nil
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return c, key, nil
}
