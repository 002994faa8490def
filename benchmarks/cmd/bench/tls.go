package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"switchflow/internal/pki"
)

// The HTTPS scenarios: every proxy terminates TLS on a second listener with a certificate the harness
// makes at start, and forwards in plain HTTP to the same origin as in the plain scenarios.

// tlsServerName is the name the certificates are made for, sent as SNI and verified by the response
// check.
const tlsServerName = "bench.example"

// certKinds are the certificate kinds a scenario may name.
var certKinds = []string{"ecdsa", "rsa"}

// certFiles are one kind's files, in the out dir: the leaf certificate followed by the intermediate
// that signed it (the chain every proxy sends whole), its key, chain and key in one PEM for HAProxy, and
// the root the clients verify against (it signed the intermediate, never the leaf).
type certFiles struct {
	Cert, Key, Combined, CA string
	// TLS12Conf is an OPENSSL_CONF file that caps an OpenSSL client (wrk, openssl s_client) at TLS 1.2,
	// for the keep-alive scenario over TLS 1.2: wrk has no option for it.
	TLS12Conf string
}

// openSSLTLS12 is TLS12Conf's content: OpenSSL 3 reads it at its start and applies the system_default
// section to every SSL_CTX the program makes.
const openSSLTLS12 = `openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
`

// certLife is how long the certificates are valid: made at every run, but over 30 days, so that
// SwitchFlow does not warn that they expire soon.
const certLife = 90 * 24 * time.Hour

// makeCerts writes, for each kind, a root, an intermediate and a leaf for tlsServerName and 127.0.0.1
// that the intermediate signs (internal/pki): ECDSA P-256 all three, or RSA 2048. They are made at
// every run.
func makeCerts(dir string) (map[string]certFiles, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out := map[string]certFiles{}
	for _, kind := range certKinds {
		exp := time.Now().Add(certLife)
		ca, err := pki.New(pki.Kind(kind), "SwitchFlow benchmark ("+kind+")", exp)
		if err != nil {
			return nil, err
		}
		leaf, err := ca.Leaf([]string{tlsServerName, "127.0.0.1"}, exp, true, x509.ExtKeyUsageServerAuth)
		if err != nil {
			return nil, err
		}
		keyPEM, err := leaf.KeyPEM()
		if err != nil {
			return nil, err
		}
		chainPEM := leaf.ChainPEM()
		f := certFiles{
			Cert:     filepath.Join(dir, kind+".crt"),
			Key:      filepath.Join(dir, kind+".key"),
			Combined: filepath.Join(dir, kind+".pem"),
			CA:       filepath.Join(dir, kind+"-root.crt"),

			TLS12Conf: filepath.Join(dir, "openssl-tls12.cnf"),
		}
		for path, b := range map[string][]byte{
			f.Cert:     chainPEM,
			f.Key:      keyPEM,
			f.Combined: append(append([]byte{}, chainPEM...), keyPEM...),
			f.CA:       ca.RootPEM(),

			f.TLS12Conf: []byte(openSSLTLS12),
		} {
			// The proxies' workers may run as another user (nginx as nobody when the harness is root).
			if err := os.WriteFile(path, b, 0o644); err != nil {
				return nil, err
			}
		}
		out[kind] = f
	}
	return out, nil
}

// tlsClientConfig is the response check's client: it verifies the proxy's certificate against the
// kind's root for tlsServerName, and offers TLS 1.2 to maxVersion.
func tlsClientConfig(cf certFiles, maxVersion string) (*tls.Config, error) {
	b, err := os.ReadFile(cf.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no certificate", cf.CA)
	}
	c := &tls.Config{RootCAs: pool, ServerName: tlsServerName, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	if maxVersion == "1.2" {
		c.MaxVersion = tls.VersionTLS12
	}
	return c, nil
}

// opensslProbe connects once with `openssl s_client`, the library wrk uses, with wrk's environment env,
// verifying the proxy's chain against caFile (it fails when the proxy does not send the intermediate,
// or the chain does not lead to caFile), and returns what it negotiated:
// "TLSv1.3 TLS_AES_128_GCM_SHA256 X25519". A keep-alive scenario's wrk negotiates the same.
func opensslProbe(ctx context.Context, addr, caFile string, env []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", addr, "-servername", tlsServerName,
		"-CAfile", caFile, "-verify_return_error", "-brief")
	cmd.Stdin = strings.NewReader("")
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	var proto, cipher, group string
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Protocol version":
			proto = v
		case "Ciphersuite":
			cipher = v
		case "Server Temp Key", "Negotiated TLS1.3 group":
			group, _, _ = strings.Cut(v, ",")
		}
	}
	if proto == "" {
		if err == nil {
			err = fmt.Errorf("no protocol version in its output")
		}
		return "", fmt.Errorf("openssl s_client: %v: %s", err, lastLine(string(out)))
	}
	return strings.TrimSpace(proto + " " + cipher + " " + group), nil
}

// wrkEnv is the environment wrk and its probe get in scenario s: OPENSSL_CONF capping them at TLS 1.2
// when s asks for it, else nothing.
func wrkEnv(s scenario, cf certFiles) []string {
	if s.tlsMax == "1.2" {
		return []string{"OPENSSL_CONF=" + cf.TLS12Conf}
	}
	return nil
}

// checkChain connects to a proxy's TLS listener twice: trusting the kind's root only, the proxy must
// send the leaf and the intermediate and they must verify for tlsServerName; trusting another root
// (wrongCA), the handshake must fail on an unknown authority. So every run shows that the chain is
// sent whole and that the clients' verification is real.
func checkChain(addr string, cf certFiles, wrongCA string) error {
	conf, err := tlsClientConfig(cf, "")
	if err != nil {
		return err
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return fmt.Errorf("verifying against %s: %w", cf.CA, err)
	}
	st := c.ConnectionState()
	_ = c.Close()
	if len(st.PeerCertificates) != 2 || !st.PeerCertificates[1].IsCA {
		return fmt.Errorf("the proxy sent %d certificates, want the leaf and the intermediate", len(st.PeerCertificates))
	}
	wrong, err := tlsClientConfig(certFiles{CA: wrongCA}, "")
	if err != nil {
		return err
	}
	c, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, wrong)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("a client trusting only %s accepted the proxy's certificate", wrongCA)
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		return fmt.Errorf("a client trusting only %s: %v, want an unknown authority", wrongCA, err)
	}
	return nil
}

// hsCounts are the TLS handshakes a proxy itself counted. Resumed is -1 when the proxy does not tell
// resumed handshakes from full ones.
type hsCounts struct {
	Total, Resumed int64
	By             string // where the counts come from
}

func (a hsCounts) minus(b hsCounts) hsCounts {
	d := hsCounts{Total: a.Total - b.Total, Resumed: a.Resumed - b.Resumed, By: a.By}
	if a.Resumed < 0 || b.Resumed < 0 {
		d.Resumed = -1
	}
	return d
}

// serverHandshakes reads the handshake counters of a running proxy, for the difference over a measured
// run: SwitchFlow's switchflow_tls_handshakes_total{result="ok"} on its admin listener (it does not
// count resumptions) and HAProxy's ssl_sess and ssl_reused_sess of frontend fe on its stats socket.
// nginx has no such counter: its handshakes are counted from the warm-up's access log (nginxProbeLog).
// ok is false for a proxy without counters.
func serverHandshakes(name string, t *tlsRun) (c hsCounts, ok bool, err error) {
	switch name {
	case "switchflow":
		c, err = switchflowHandshakes(t.Admin)
		return c, true, err
	case "haproxy":
		c, err = haproxyHandshakes(t.StatsSocket)
		return c, true, err
	}
	return hsCounts{}, false, nil
}

func switchflowHandshakes(admin string) (hsCounts, error) {
	c := hsCounts{Resumed: -1, By: "switchflow_tls_handshakes_total over the measured run (resumptions not counted)"}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "switchflow_tls_handshakes_total{") || !strings.Contains(line, `result="ok"`) {
			continue
		}
		f := strings.Fields(line)
		n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil {
			return c, fmt.Errorf("metrics: %q: %w", line, err)
		}
		c.Total += n
	}
	return c, sc.Err()
}

func haproxyHandshakes(socket string) (hsCounts, error) {
	c := hsCounts{By: "HAProxy's ssl_sess + ssl_reused_sess of the frontend over the measured run"}
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return c, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return c, err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return c, err
	}
	lines := strings.Split(string(b), "\n")
	hdr := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	col := func(name string) int {
		for i, h := range hdr {
			if h == name {
				return i
			}
		}
		return -1
	}
	iSess, iReused := col("ssl_sess"), col("ssl_reused_sess")
	if iSess < 0 || iReused < 0 {
		return c, fmt.Errorf("haproxy show stat has no ssl_sess or ssl_reused_sess column")
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) > max(iSess, iReused) && f[0] == "fe" && f[1] == "FRONTEND" {
			full, _ := strconv.ParseInt(f[iSess], 10, 64)
			reused, _ := strconv.ParseInt(f[iReused], 10, 64)
			c.Total, c.Resumed = full+reused, reused
			return c, nil
		}
	}
	return c, fmt.Errorf("haproxy show stat: no FRONTEND line for fe")
}

// probeHeader marks the warm-up's requests in the handshake scenarios: nginx logs the TLS
// version, cipher and whether the session was reused for those requests only (nginx.conf.tmpl), so the
// measured run pays for no log.
const probeHeader = "X-Bench-Probe: 1"

// nginxProbeLog counts the handshakes in nginx's probe log: every line is one request, in these
// scenarios one connection; "r" in the last field marks a reused session. It also returns the most
// common "protocol cipher" seen.
func nginxProbeLog(path string) (hsCounts, string, error) {
	c := hsCounts{By: "nginx's $ssl_session_reused in the warm-up's access log"}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, "", err
	}
	seen := map[string]int{}
	best := ""
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		c.Total++
		if f[2] == "r" {
			c.Resumed++
		}
		k := f[0] + " " + f[1]
		seen[k]++
		if seen[k] > seen[best] {
			best = k
		}
	}
	return c, best, nil
}
