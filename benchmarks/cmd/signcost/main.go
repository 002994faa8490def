// Command signcost prints the CPU time (user + system, getrusage) of one server signature in Go's
// crypto: RSA 2048 PSS, what a TLS 1.3 server signs with an RSA certificate, and ECDSA P-256. It is the
// floor under a full handshake's cost in SwitchFlow (Go's crypto/tls), to set beside
// `openssl speed rsa2048 ecdsap256` (which also divides by CPU time) for nginx and HAProxy: the
// https-full-rsa scenario's difference between them is mostly this.
//
//	taskset -c 1 go run ./benchmarks/cmd/signcost; taskset -c 1 openssl speed -seconds 2 rsa2048 ecdsap256
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"
)

func main() {
	rsaN := flag.Int("rsa", 300, "RSA signatures to time")
	ecdsaN := flag.Int("ecdsa", 5000, "ECDSA signatures to time")
	flag.Parse()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fatal(err)
	}
	h := sha256.Sum256([]byte("signcost"))
	pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash} // as crypto/tls signs in TLS 1.3
	signRSA := func() error { _, err := rsa.SignPSS(rand.Reader, rk, crypto.SHA256, h[:], pss); return err }
	signECDSA := func() error { _, err := ecdsa.SignASN1(rand.Reader, ek, h[:]); return err }
	fmt.Printf("RSA 2048 PSS sign: %.0f µs CPU\n", perOp(*rsaN, signRSA))
	fmt.Printf("ECDSA P-256 sign:  %.1f µs CPU\n", perOp(*ecdsaN, signECDSA))
}

// perOp runs f n times after a few unmeasured ones and returns the CPU time per run in µs.
func perOp(n int, f func() error) float64 {
	for i := 0; i < 10; i++ {
		if err := f(); err != nil {
			fatal(err)
		}
	}
	t := cpuTime()
	for i := 0; i < n; i++ {
		if err := f(); err != nil {
			fatal(err)
		}
	}
	return float64(cpuTime()-t) / float64(time.Microsecond) / float64(n)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "signcost:", err)
	os.Exit(1)
}
