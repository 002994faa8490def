package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"switchflow/config"
	"switchflow/engine"
)

// The certificates load as the proxies load them (chain and key apart, and in one PEM for HAProxy),
// are of the kind named, hold the leaf and then the intermediate, and verify against their root through
// that intermediate only, for the name and address the clients use.
func TestMakeCerts(t *testing.T) {
	certs, err := makeCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range certKinds {
		cf := certs[kind]
		pair, err := tls.LoadX509KeyPair(cf.Cert, cf.Key)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if both, err := tls.LoadX509KeyPair(cf.Combined, cf.Combined); err != nil || len(both.Certificate) != 2 {
			t.Fatalf("%s combined PEM: %v, %d certificates", kind, err, len(both.Certificate))
		}
		switch k := pair.PrivateKey.(type) {
		case *ecdsa.PrivateKey:
			if kind != "ecdsa" || k.Curve != elliptic.P256() {
				t.Errorf("%s: an ECDSA key on %s", kind, k.Curve.Params().Name)
			}
		case *rsa.PrivateKey:
			if kind != "rsa" || k.N.BitLen() != 2048 {
				t.Errorf("%s: an RSA key of %d bits", kind, k.N.BitLen())
			}
		default:
			t.Errorf("%s: key of type %T", kind, k)
		}
		if len(pair.Certificate) != 2 {
			t.Fatalf("%s: %d certificates in %s, want the leaf and the intermediate", kind, len(pair.Certificate), cf.Cert)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		inter, err := x509.ParseCertificate(pair.Certificate[1])
		if err != nil {
			t.Fatal(err)
		}
		inters := x509.NewCertPool()
		inters.AddCert(inter)
		conf, err := tlsClientConfig(cf, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{tlsServerName, "127.0.0.1"} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: conf.RootCAs, Intermediates: inters, DNSName: name}); err != nil {
				t.Errorf("%s: the leaf does not verify for %s: %v", kind, name, err)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: conf.RootCAs, DNSName: tlsServerName}); err == nil {
			t.Errorf("%s: the leaf verifies without the intermediate: the root signed it", kind)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: conf.RootCAs, Intermediates: inters, DNSName: "other.example"}); err == nil {
			t.Errorf("%s: the leaf verifies for other.example", kind)
		}
	}
}

// The clients verify for real: against a server sending the chain, checkChain, openssl s_client and
// hsload accept the right root and refuse the other kind's; against one sending the leaf alone,
// checkChain and s_client refuse (the root did not sign the leaf). OPENSSL_CONF caps s_client at TLS 1.2.
func TestClientsVerifyChain(t *testing.T) {
	dir := t.TempDir()
	certs, err := makeCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	cf := certs["ecdsa"]
	wrong := certs["rsa"].CA
	pair, err := tls.LoadX509KeyPair(cf.Cert, cf.Key)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(c tls.Certificate) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "Hello, World!")
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{c}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "https://")
	}
	whole := serve(pair)
	leafOnly := pair
	leafOnly.Certificate = pair.Certificate[:1]
	alone := serve(leafOnly)

	if err := checkChain(whole, cf, wrong); err != nil {
		t.Errorf("the whole chain: %v", err)
	}
	if err := checkChain(whole, cf, cf.CA); err == nil || !strings.Contains(err.Error(), "accepted") {
		t.Errorf("the right root given as the wrong one: %v", err)
	}
	if err := checkChain(alone, cf, wrong); err == nil {
		t.Error("the leaf alone passed checkChain")
	}
	if lookTool("openssl") != "" {
		ctx := context.Background()
		if got, err := opensslProbe(ctx, whole, cf.CA, nil); err != nil || !strings.HasPrefix(got, "TLSv1.3 ") {
			t.Errorf("s_client, the whole chain: %q, %v", got, err)
		}
		if got, err := opensslProbe(ctx, whole, cf.CA, wrkEnv(scenario{tlsMax: "1.2"}, cf)); err != nil || !strings.HasPrefix(got, "TLSv1.2 ") {
			t.Errorf("s_client capped at TLS 1.2: %q, %v", got, err)
		}
		if got, err := opensslProbe(ctx, whole, wrong, nil); err == nil {
			t.Errorf("s_client with the wrong root: %q", got)
		}
		if got, err := opensslProbe(ctx, alone, cf.CA, nil); err == nil {
			t.Errorf("s_client, the leaf alone: %q", got)
		}
	}
	hsload := filepath.Join(dir, "hsload")
	if out, err := exec.Command("go", "build", "-o", hsload, "switchflow/benchmarks/cmd/hsload").CombinedOutput(); err != nil {
		t.Fatalf("building hsload: %v\n%s", err, out)
	}
	run := func(addr, ca string) error {
		return exec.Command(hsload, "-addr", addr, "-conns", "1", "-duration", "300ms", "-ca", ca).Run()
	}
	if err := run(whole, cf.CA); err != nil {
		t.Errorf("hsload with the right root: %v", err)
	}
	if err := run(whole, wrong); err == nil {
		t.Error("hsload with the wrong root answered")
	}
}

// Every proxy accepts its HTTPS configuration: nginx -t and haproxy -c (when installed), SwitchFlow's
// own check, which also loads the certificate files.
func TestTLSConfigsAccepted(t *testing.T) {
	dir := t.TempDir()
	certs, err := makeCerts(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{repoRoot: root, outDir: dir}
	for _, kind := range certKinds {
		tr := &tlsRun{Listen: "127.0.0.1:1", Cert: certs[kind], Admin: "127.0.0.1:2",
			StatsSocket: filepath.Join(dir, "h.sock"), ProbeLog: filepath.Join(dir, "probe.log")}

		cfg, err := config.Parse([]byte(switchflowConfig("127.0.0.1:3", "127.0.0.1:4", false, 1, tr)))
		if err != nil {
			t.Fatalf("switchflow config: %v", err)
		}
		if err := engine.Check(cfg); err != nil {
			t.Errorf("switchflow config with the %s certificate: %v", kind, err)
		}
		if cfg.TLS == nil || len(cfg.TLS.Listen) != 1 || cfg.TLS.Listen[0] != tr.Listen || cfg.Admin == nil || cfg.Admin.Listen != tr.Admin {
			t.Errorf("switchflow config: [tls] %+v, [admin] %+v", cfg.TLS, cfg.Admin)
		}

		td := templateData{Dir: dir, Listen: "127.0.0.1:3", Upstream: "127.0.0.1:4", MaxConns: 100, TLS: tr}
		if nginx := lookTool("nginx"); nginx != "" {
			conf := filepath.Join(dir, "nginx.conf")
			if err := r.writeTemplate("nginx.conf.tmpl", conf, td); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(nginx, "-t", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log")).CombinedOutput()
			if err != nil {
				t.Errorf("nginx -t with the %s certificate: %v\n%s", kind, err, out)
			}
		}
		if haproxy := lookTool("haproxy"); haproxy != "" {
			conf := filepath.Join(dir, "haproxy.cfg")
			if err := r.writeTemplate("haproxy.cfg.tmpl", conf, td); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(haproxy, "-c", "-f", conf).CombinedOutput(); err != nil {
				t.Errorf("haproxy -c with the %s certificate: %v\n%s", kind, err, out)
			}
		}
	}
}

// Without TLS the templates add nothing of it: the plain scenarios run the configs they always ran.
func TestPlainConfigsHaveNoTLS(t *testing.T) {
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &runner{repoRoot: root, outDir: dir}
	td := templateData{Dir: dir, Listen: "127.0.0.1:3", Upstream: "127.0.0.1:4", MaxConns: 100}
	for _, tmpl := range []string{"nginx.conf.tmpl", "haproxy.cfg.tmpl"} {
		dst := filepath.Join(dir, tmpl)
		if err := r.writeTemplate(tmpl, dst, td); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(dst)
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); !strings.HasPrefix(l, "#") && (strings.Contains(l, "ssl") || strings.Contains(l, "stats socket")) {
				t.Errorf("%s without TLS has %q", tmpl, l)
			}
		}
	}
	if cfg := switchflowConfig("127.0.0.1:3", "127.0.0.1:4", false, 1, nil); strings.Contains(cfg, "[tls]") || strings.Contains(cfg, "[admin]") {
		t.Errorf("switchflow config without TLS:\n%s", cfg)
	}
}

func TestSelectScenarios(t *testing.T) {
	got := func(list ...string) string {
		ss, err := selectScenarios(list)
		if err != nil {
			return "error: " + err.Error()
		}
		return names(ss)
	}
	if g := got("plain"); g != names(plainScenarios) {
		t.Errorf("plain: %s", g)
	}
	if g := got("https"); !strings.HasPrefix(g, "https-keepalive-13b-ecdsa,") || strings.Contains(g, "hello") || len(strings.Split(g, ",")) != 11 {
		t.Errorf("https: %s", g)
	}
	if g := got("https-*-rsa"); g != "https-keepalive-13b-rsa,https-keepalive-4k-rsa,https-full-rsa,https-resumed-rsa" {
		t.Errorf("https-*-rsa: %s", g)
	}
	if g := got("hello", "https-full-ecdsa", "hello"); g != "hello,https-full-ecdsa" {
		t.Errorf("a name twice: %s", g)
	}
	if g := got("all"); len(strings.Split(g, ",")) != len(plainScenarios)+11 {
		t.Errorf("all: %s", g)
	}
	for _, bad := range []string{"https-nope", "nope-*", "[", "HELLO"} {
		if g := got(bad); !strings.HasPrefix(g, "error: ") {
			t.Errorf("%q: %s, want an error", bad, g)
		}
	}
	for _, s := range httpsScenarios() {
		if !contains(certKinds, s.tls) || s.resume && !s.hsload {
			t.Errorf("%s: tls %q, resume %v, hsload %v", s.name, s.tls, s.resume, s.hsload)
		}
	}
}

func TestNginxProbeLog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "probe.log")
	log := "TLSv1.3 TLS_AES_128_GCM_SHA256 .\nTLSv1.3 TLS_AES_128_GCM_SHA256 r\nTLSv1.3 TLS_AES_128_GCM_SHA256 r\nTLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256 r\n\n"
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	c, negotiated, err := nginxProbeLog(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != 4 || c.Resumed != 3 || negotiated != "TLSv1.3 TLS_AES_128_GCM_SHA256" {
		t.Errorf("got %+v, %q", c, negotiated)
	}
	if _, _, err := nginxProbeLog(p + ".missing"); err == nil {
		t.Error("a missing log: no error")
	}
}

func TestServerCount(t *testing.T) {
	for _, tc := range []struct {
		m    sample
		want string
	}{
		{sample{}, "–"},
		{sample{ServerCount: "x over the measured run", ServerHandshakes: 1000, ServerResumed: -1, Requests: 1000}, "1.00 handshakes/req, resumed not counted"},
		{sample{ServerCount: "x over the measured run", ServerHandshakes: 64, ServerResumed: 0, Requests: 100000}, "64 handshakes, 0.0% resumed"},
		{sample{ServerCount: "x over the measured run", ServerHandshakes: 1000, ServerResumed: 960, Requests: 1000}, "1.00 handshakes/req, 96.0% resumed"},
		{sample{ServerCount: "x in the warm-up's log", ServerHandshakes: 200, ServerResumed: 190, Requests: 1000}, "warm-up: 200 handshakes, 95.0% resumed"},
	} {
		if got := serverCount(&tc.m); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.m, got, tc.want)
		}
	}
}

// The HTTPS table and the targets: ratios against nginx and HAProxy from paired rounds, and a verdict
// per target.
func TestTLSMarkdown(t *testing.T) {
	res := &results{Meta: meta{Rounds: 2, Duration: "10s"}, cells: map[string]*cell{}}
	add := func(scen, proxy string, cpu ...float64) {
		c := &cell{Scenario: scen, Proxy: proxy}
		for i, v := range cpu {
			c.Samples = append(c.Samples, sample{Round: i + 1, CPUusPerReq: v, P99ms: v / 100, Requests: 1000, RPS: 1000})
		}
		res.Cells = append(res.Cells, c)
		res.cells[scen+"/"+proxy] = c
	}
	add("https-keepalive-13b-ecdsa", "switchflow", 9, 11)
	add("https-keepalive-13b-ecdsa", "nginx", 10, 10)
	add("https-keepalive-13b-ecdsa", "haproxy", 12, 12)
	add("https-full-ecdsa", "switchflow", 250, 250)
	add("https-full-ecdsa", "nginx", 250, 200)
	add("https-full-ecdsa", "haproxy", 300, 300)
	res.summarize()
	md := res.markdown()
	for _, want := range []string{
		"| https-keepalive-13b-ecdsa | switchflow | – | 10.0 | 1.00 | 0.83 |",
		"| https-full-ecdsa | switchflow | – | 250.0 | 1.12 | 0.83 | 4000 | 0.90 | 1.20 |",
		"- https-keepalive-13b-ecdsa: CPU per request 1.00× nginx (target ≤ 1.0: met)",
		"- https-full-ecdsa: handshakes/s/core 0.90× nginx [rounds 0.80–1.00] (target ≥ 0.9: met); p99 1.12× nginx (target ≤ 1.0: NOT met).",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in\n%s", want, md)
		}
	}
}
