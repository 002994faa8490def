package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// allProxies is the order proxies run in within the first round; later
// rounds rotate it so no proxy always runs first or last.
var allProxies = []string{"switchflow", "nginx", "haproxy", "fastproxy", "stdproxy", "direct"}

// floorProxies run only when named in -proxies: gnetfwd, a bare gnet byte
// forwarder with no HTTP, measures what SwitchFlow costs above gnet, the Go
// runtime and the kernel.
var floorProxies = []string{"gnetfwd"}

// tlsProxies are the proxies that run the HTTPS scenarios: those that terminate TLS themselves.
var tlsProxies = []string{"switchflow", "nginx", "haproxy"}

// tlsRun is an HTTPS scenario's side of one proxy run: the proxy listens for TLS on Listen besides its
// plain listener (which the readiness check uses), with Cert.
type tlsRun struct {
	Listen string
	Cert   certFiles
	// Admin is SwitchFlow's admin listener, for its handshake counters.
	Admin string
	// StatsSocket is HAProxy's stats socket, for its handshake counters.
	StatsSocket string
	// ProbeLog is set in the handshake scenarios: nginx then logs the TLS version, cipher and
	// $ssl_session_reused of the requests that carry probeHeader (the warm-up's) there.
	ProbeLog string
}

// maxConns is the connection limit every proxy is configured with.
const maxConns = 20000

type templateData struct {
	Dir, Listen, Upstream string
	MaxConns              int
	// Cache is set in the cache scenarios only: the templates then add the
	// cache for CachePrefix, and nothing else changes. CacheDir is nginx's
	// proxy_cache_path (on tmpfs), CacheTTL the TTL in whole seconds.
	Cache       bool
	CacheDir    string
	CachePrefix string
	CacheTTL    int
	// TLS is set in the HTTPS scenarios only: the templates then add the TLS listener and its
	// settings, and nothing else changes.
	TLS *tlsRun
}

// cachingProxies are the proxies that run the cache scenarios; the others
// have no response cache and are skipped there.
var cachingProxies = []string{"switchflow", "nginx", "haproxy", "direct"}

// startProxy starts a fresh instance of the named proxy on listen, pinned to
// the proxy CPU, forwarding to the origin, and waits until it answers.
// With cache set, the proxy's response cache is on for cachePrefix; with
// tr set, it also terminates TLS as tr says. The
// returned cleanup removes what the run left outside the out dir (nginx's
// cache directory on tmpfs); call it after stopping the proxy. direct starts
// nothing and returns a nil proc.
func (r *runner) startProxy(name, listen string, cache bool, tr *tlsRun) (p *proc, cleanup func(), err error) {
	cleanup = func() {}
	dir := filepath.Join(r.outDir, "run", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, cleanup, err
	}
	logPath := filepath.Join(dir, name+".log")
	goEnv := []string{"GOMAXPROCS=1"}
	td := r.templateData(dir, listen)
	td.TLS = tr
	switch name {
	case "direct":
		return nil, cleanup, nil
	case "switchflow":
		cfg := filepath.Join(dir, "switchflow.toml")
		if err := os.WriteFile(cfg, []byte(switchflowConfig(listen, r.originAddr, cache, r.opt.loops, tr)), 0o644); err != nil {
			return nil, cleanup, err
		}
		// No GOMAXPROCS: SwitchFlow sets its own (loops + 1, see main.go's spareProc), as it does for users.
		p, err = r.sup.start(name, r.opt.proxyCPU, logPath, nil, false, r.bins["switchflow"], "-config", cfg)
	case "nginx":
		if cache {
			base, err := cacheBaseDir(dir)
			if err != nil {
				return nil, cleanup, err
			}
			cleanup = func() { _ = os.RemoveAll(base) }
			td.Cache = true
			// nginx creates it and hands it to its worker user (nobody, when
			// the harness runs as root).
			td.CacheDir = filepath.Join(base, "nginx")
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := r.writeTemplate("nginx.conf.tmpl", conf, td); err != nil {
			return nil, cleanup, err
		}
		p, err = r.sup.start(name, r.opt.proxyCPU, logPath, nil, false, r.bins["nginx"],
			"-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log"))
	case "haproxy":
		td.Cache = cache
		conf := filepath.Join(dir, "haproxy.cfg")
		if err := r.writeTemplate("haproxy.cfg.tmpl", conf, td); err != nil {
			return nil, cleanup, err
		}
		p, err = r.sup.start(name, r.opt.proxyCPU, logPath, nil, false, r.bins["haproxy"], "-db", "-f", conf)
	case "fastproxy", "stdproxy":
		p, err = r.sup.start(name, r.opt.proxyCPU, logPath, goEnv, false, r.bins[name], "-listen", listen, "-upstream", r.originAddr)
	case "gnetfwd":
		// The same runtime SwitchFlow gives itself: GOMAXPROCS = loops + 1
		// (with loops = 0, one loop per CPU, the runtime's default).
		var env []string
		if r.opt.loops > 0 {
			env = []string{"GOMAXPROCS=" + strconv.Itoa(r.opt.loops+1)}
		}
		p, err = r.sup.start(name, r.opt.proxyCPU, logPath, env, false, r.bins[name],
			"-listen", listen, "-upstream", r.originAddr, "-loops", strconv.Itoa(r.opt.loops))
	default:
		return nil, cleanup, fmt.Errorf("unknown proxy %q", name)
	}
	if err != nil {
		return nil, cleanup, err
	}
	if err := waitReady(p, listen, 10*time.Second); err != nil {
		r.sup.stop(p)
		return nil, cleanup, err
	}
	return p, cleanup, nil
}

// cacheBaseDir creates a fresh directory for nginx's proxy_cache_path on
// tmpfs (/dev/shm), so the cache lives in memory as the other proxies'
// caches do; without /dev/shm it falls back to dir. The caller removes it.
func cacheBaseDir(dir string) (string, error) {
	parent := "/dev/shm"
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		fmt.Fprintf(os.Stderr, "bench: warning: no /dev/shm; nginx's cache goes to %s, which may not be in memory\n", dir)
		parent = dir
	}
	base, err := os.MkdirTemp(parent, "switchflow-bench-cache-")
	if err != nil {
		return "", err
	}
	// nginx's workers may run as another user and must reach the cache
	// directory inside.
	if err := os.Chmod(base, 0o755); err != nil {
		_ = os.RemoveAll(base)
		return "", err
	}
	return base, nil
}

func (r *runner) templateData(dir, listen string) templateData {
	return templateData{Dir: dir, Listen: listen, Upstream: r.originAddr, MaxConns: maxConns,
		CachePrefix: cachePrefix, CacheTTL: int(cacheTTL / time.Second)}
}

// checkHAProxyCache asks the installed HAProxy (-c) whether it accepts the
// cache configuration of the cache scenarios; it returns why not, or "".
func (r *runner) checkHAProxyCache() string {
	dir := filepath.Join(r.outDir, "run", "haproxy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err.Error()
	}
	td := r.templateData(dir, "127.0.0.1:1")
	td.Upstream = "127.0.0.1:2"
	td.Cache = true
	conf := filepath.Join(dir, "haproxy-cache-check.cfg")
	if err := r.writeTemplate("haproxy.cfg.tmpl", conf, td); err != nil {
		return err.Error()
	}
	out, err := exec.Command(r.bins["haproxy"], "-c", "-f", conf).CombinedOutput()
	if err != nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "ALERT") {
				return "this HAProxy refuses the cache section: " + strings.TrimSpace(l)
			}
		}
		return "this HAProxy refuses the cache section: " + firstErrorLine(string(out))
	}
	return ""
}

func switchflowConfig(listen, origin string, cache bool, loops int, tr *tlsRun) string {
	cfg := fmt.Sprintf(`# written by benchmarks/cmd/bench
[server]
listen = %q
loops = %d
max_connections = %d

[log]
level = "warn"
`, listen, loops, maxConns)
	if tr != nil {
		cfg += fmt.Sprintf(`
# The HTTPS scenarios: TLS on a second listener; the admin listener serves the handshake counters.
[tls]
listen = %q
certificates = [ { cert = %q, key = %q } ]

[admin]
listen = %q
`, tr.Listen, tr.Cert.Cert, tr.Cert.Key, tr.Admin)
	}
	if cache {
		cfg += `
[cache]
max_size = "64MiB"
`
	}
	cfg += fmt.Sprintf(`
[[upstream]]
name = "origin"
servers = [ { addr = %q } ]
keepalive = 256

[[route]]
path_prefix = "/"
upstream = "origin"
`, origin)
	if cache {
		cfg += fmt.Sprintf(`
# The cache scenarios: only this prefix is cached.
[[route]]
path_prefix = %q
upstream = "origin"
cache_ttl = %q
`, cachePrefix, cacheTTL.String())
	}
	return cfg
}

func (r *runner) writeTemplate(tmplName, dst string, td templateData) error {
	t, err := template.ParseFiles(filepath.Join(r.repoRoot, "benchmarks", "peers", tmplName))
	if err != nil {
		return err
	}
	var b bytes.Buffer
	err = t.Execute(&b, td)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b.Bytes(), 0o644)
}

// waitReady polls until a GET / through addr returns the origin's hello
// body, p exits, or limit passes.
func waitReady(p *proc, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	hello := scenario{path: "/"}
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited at start (%v): %s (log: %s)", p.name, p.err, p.lastLogLine(), p.log)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			if last = hello.check(addr); last == nil {
				return nil
			}
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	name, logPath := "origin", ""
	if p != nil {
		name, logPath = p.name, p.log
	}
	return fmt.Errorf("%s not ready on %s after %v: %v (log: %s)", name, addr, limit, last, logPath)
}

// freePort asks the kernel for an unused loopback port.
func freePort() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}
