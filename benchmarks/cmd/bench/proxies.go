package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"text/template"
	"time"
)

// allProxies is the order proxies run in within the first round; later
// rounds rotate it so no proxy always runs first or last.
var allProxies = []string{"switchflow", "nginx", "haproxy", "fastproxy", "stdproxy", "direct"}

// maxConns is the connection limit every proxy is configured with.
const maxConns = 20000

type templateData struct {
	Dir, Listen, Upstream string
	MaxConns              int
}

// startProxy starts a fresh instance of the named proxy on listen, pinned to
// the proxy CPU, forwarding to the origin, and waits until it answers.
// direct starts nothing and returns nil.
func (r *runner) startProxy(name, listen string) (*proc, error) {
	dir := filepath.Join(r.outDir, "run", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	goEnv := []string{"GOMAXPROCS=1"}
	var p *proc
	var err error
	switch name {
	case "direct":
		return nil, nil
	case "switchflow":
		cfg := filepath.Join(dir, "switchflow.toml")
		if err := os.WriteFile(cfg, []byte(switchflowConfig(listen, r.originAddr)), 0o644); err != nil {
			return nil, err
		}
		p, err = r.sup.start(name, r.opt.proxyCPU, logPath, goEnv, false, r.bins["switchflow"], "-config", cfg)
	case "nginx":
		conf := filepath.Join(dir, "nginx.conf")
		if err := r.writeTemplate("nginx.conf.tmpl", conf, dir, listen); err != nil {
			return nil, err
		}
		p, err = r.sup.start(name, r.opt.proxyCPU, logPath, nil, false, r.bins["nginx"],
			"-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log"))
	case "haproxy":
		conf := filepath.Join(dir, "haproxy.cfg")
		if err := r.writeTemplate("haproxy.cfg.tmpl", conf, dir, listen); err != nil {
			return nil, err
		}
		p, err = r.sup.start(name, r.opt.proxyCPU, logPath, nil, false, r.bins["haproxy"], "-db", "-f", conf)
	case "fastproxy", "stdproxy":
		p, err = r.sup.start(name, r.opt.proxyCPU, logPath, goEnv, false, r.bins[name], "-listen", listen, "-upstream", r.originAddr)
	default:
		return nil, fmt.Errorf("unknown proxy %q", name)
	}
	if err != nil {
		return nil, err
	}
	if err := waitReady(p, listen, 10*time.Second); err != nil {
		r.sup.stop(p)
		return nil, err
	}
	return p, nil
}

func switchflowConfig(listen, origin string) string {
	return fmt.Sprintf(`# written by benchmarks/cmd/bench
[server]
listen = %q
loops = 1
max_connections = %d

[log]
level = "warn"

[[upstream]]
name = "origin"
servers = [ { addr = %q } ]
keepalive = 256

[[route]]
path_prefix = "/"
upstream = "origin"
`, listen, maxConns, origin)
}

func (r *runner) writeTemplate(tmplName, dst, dir, listen string) error {
	t, err := template.ParseFiles(filepath.Join(r.repoRoot, "benchmarks", "peers", tmplName))
	if err != nil {
		return err
	}
	var b bytes.Buffer
	err = t.Execute(&b, templateData{Dir: dir, Listen: listen, Upstream: r.originAddr, MaxConns: maxConns})
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
