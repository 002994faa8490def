package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	scenarios  []string
	proxies    []string
	rounds     int
	duration   time.Duration
	warmup     time.Duration
	outDir     string
	proxyCPU   string
	loadCPU    string
	switchflow string
	loops      int // SwitchFlow's server.loops (the loops sweep); the peers keep one worker
}

func main() {
	var o options
	scen := flag.String("scenarios", "plain", "comma-separated scenarios, groups (plain: "+names(plainScenarios)+
		"; https: "+names(httpsScenarios())+"; all) or patterns (https-*-rsa)")
	prox := flag.String("proxies", strings.Join(allProxies, ","), "comma-separated proxies")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; each metric is the median over rounds")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured wrk run per proxy, scenario and round (whole seconds)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured wrk run before each measured one; 0 skips it")
	flag.StringVar(&o.outDir, "out", "benchmarks/out", "output directory (results.json, chart.png, configs, logs)")
	flag.StringVar(&o.proxyCPU, "proxy-cpu", "0", "CPU list (taskset -c) for the proxy under test")
	flag.IntVar(&o.loops, "loops", 1, "SwitchFlow's server.loops, for the loops sweep (0: one per CPU it may use); the peers keep one worker")
	flag.StringVar(&o.loadCPU, "load-cpu", "1", "CPU list (taskset -c) for wrk, the origin and idleconns")
	flag.StringVar(&o.switchflow, "switchflow", "", "SwitchFlow binary; empty: build it from the repo root into -out")
	report := flag.String("report", "", "print the table for an earlier run's results.json (the same rounds, today's ratios) and exit")
	chart := flag.String("chart", "", "with -report: also draw that run's chart to this PNG file")
	certs := flag.String("certs", "", "write the HTTPS scenarios' certificates into this directory and exit "+
		"(KIND.crt leaf and intermediate, KIND.key, KIND.pem both and the key, KIND-root.crt; for the scripts)")
	flag.Parse()
	if *certs != "" {
		if _, err := makeCerts(*certs); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *report != "" {
		if err := reprint(*report, *chart); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	o.scenarios = splitList(*scen)
	o.proxies = splitList(*prox)
	pinSelf(o.loadCPU)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

// pinSelf re-executes the harness under taskset on the load CPU, so that
// its own threads (RSS sampling, process management) never run on the proxy's
// CPU. It returns only when already pinned or when pinning is impossible.
func pinSelf(cpu string) {
	const marker = "SWITCHFLOW_BENCH_PINNED"
	if os.Getenv(marker) != "" {
		return
	}
	taskset := lookTool("taskset")
	self, err := os.Executable()
	if taskset == "" || err != nil {
		return
	}
	args := append([]string{"taskset", "-c", cpu, self}, os.Args[1:]...)
	err = syscall.Exec(taskset, args, append(os.Environ(), marker+"=1"))
	fmt.Fprintf(os.Stderr, "bench: could not pin itself to CPU %s: %v\n", cpu, err)
}

func names(ss []scenario) string {
	n := make([]string, len(ss))
	for i, s := range ss {
		n[i] = s.name
	}
	return strings.Join(n, ",")
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// runner holds the state of one harness run.
type runner struct {
	opt        options
	ctx        context.Context
	sup        *supervisor
	repoRoot   string
	outDir     string
	bins       map[string]string // tool or proxy name → binary path
	skip       map[string]string // proxy → why it is skipped
	skipCache  map[string]string // proxy → why it is skipped in the cache scenarios
	origin     *proc
	originAddr string
	hz         float64
	certs      map[string]certFiles // HTTPS scenarios: certificate kind → its files
	https      bool                 // an HTTPS scenario is selected: hsload is built
}

func run(ctx context.Context, o options) (err error) {
	if o.rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}
	scens, err := selectScenarios(o.scenarios)
	if err != nil {
		return err
	}
	for _, p := range o.proxies {
		if !contains(allProxies, p) && !contains(floorProxies, p) {
			return fmt.Errorf("unknown proxy %q (have %s)", p, strings.Join(append(allProxies, floorProxies...), ","))
		}
	}
	if len(scens) == 0 || len(o.proxies) == 0 {
		return errors.New("no scenario or no proxy selected")
	}
	if o.proxyCPU == o.loadCPU {
		fmt.Fprintln(os.Stderr, "bench: warning: -proxy-cpu equals -load-cpu; the proxy shares its CPU with wrk and the origin")
	}

	root, err := findRepoRoot()
	if err != nil {
		return err
	}
	out, err := filepath.Abs(o.outDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(out, "raw"), 0o755); err != nil {
		return err
	}
	r := &runner{opt: o, ctx: ctx, sup: newSupervisor(), repoRoot: root, outDir: out,
		bins: map[string]string{}, skip: map[string]string{}, skipCache: map[string]string{}, hz: clockTicks()}
	defer r.sup.stopAll()

	raiseFileLimit()
	if err := r.prepareTools(); err != nil {
		return err
	}
	r.https = hasHTTPS(scens)
	if err := r.build(); err != nil {
		return err
	}
	if r.https {
		if r.certs, err = makeCerts(filepath.Join(out, "certs")); err != nil {
			return fmt.Errorf("making the HTTPS scenarios' certificates: %w", err)
		}
	}
	for _, p := range o.proxies {
		if !contains(cachingProxies, p) {
			r.skipCache[p] = "no cache"
		}
	}
	if hasCache(scens) && contains(o.proxies, "haproxy") && r.skip["haproxy"] == "" {
		if why := r.checkHAProxyCache(); why != "" {
			r.skipCache["haproxy"] = why
		}
	}
	if err := r.startOrigin(); err != nil {
		return err
	}

	// Measured after the origin started: it idles, so anything busy is
	// someone else's.
	busy := machineBusy(time.Second)
	if busy > 10 {
		fmt.Fprintf(os.Stderr, "bench: warning: the machine is %.0f%% busy before any load; other processes will skew every number\n", busy)
	}
	res := &results{Meta: r.meta(scens), cells: map[string]*cell{}}
	res.Meta.Host["busy_percent_before"] = fmt.Sprintf("%.0f", busy)
	for _, s := range scens {
		for _, p := range o.proxies {
			c := &cell{Scenario: s.name, Proxy: p, Skipped: r.skip[p]}
			if c.Skipped == "" && s.cache {
				c.Skipped = r.skipCache[p]
			}
			if c.Skipped == "" && s.tls != "" && !contains(tlsProxies, p) {
				c.Skipped = "no TLS termination in this harness"
			}
			res.cells[s.name+"/"+p] = c
			res.Cells = append(res.Cells, c)
		}
	}
	for _, p := range o.proxies {
		if why := r.skip[p]; why != "" {
			fmt.Fprintf(os.Stderr, "bench: skipping %s: %s\n", p, why)
		} else if why := r.skipCache[p]; why != "" && hasCache(scens) {
			fmt.Fprintf(os.Stderr, "bench: skipping %s in the cache scenarios: %s\n", p, why)
		}
	}

	total := o.rounds * len(scens) * len(o.proxies)
	done := 0
	for round := 1; round <= o.rounds; round++ {
		order := rotate(o.proxies, round-1)
		for _, s := range scens {
			for _, p := range order {
				if err := ctx.Err(); err != nil {
					return err
				}
				done++
				c := res.cells[s.name+"/"+p]
				if c.Skipped != "" {
					continue
				}
				fmt.Fprintf(os.Stderr, "bench: [%d/%d] round %d %s %s\n", done, total, round, s.name, p)
				smp, err := r.measure(round, s, p)
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					fmt.Fprintf(os.Stderr, "bench:   %s %s failed: %v\n", s.name, p, err)
					smp.Round = round
					smp.Failed = firstLine(err.Error())
				}
				c.Samples = append(c.Samples, smp)
				// Let sockets in TIME_WAIT and the last run's stragglers settle.
				sleepCtx(ctx, 500*time.Millisecond)
			}
		}
	}

	busyAfter := machineBusy(time.Second)
	res.Meta.Host["busy_percent_after"] = fmt.Sprintf("%.0f", busyAfter)
	if busyAfter > 10 {
		fmt.Fprintf(os.Stderr, "bench: warning: the machine was %.0f%% busy after the last run, with nothing of the harness running; other processes skewed these numbers\n", busyAfter)
	}
	res.summarize()
	fmt.Print(res.markdown())
	if err := res.writeJSON(filepath.Join(out, "results.json")); err != nil {
		return err
	}
	if err := writeChart(root, filepath.Join(out, "results.json"), filepath.Join(out, "chart.png")); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s and %s\n", filepath.Join(out, "results.json"), filepath.Join(out, "chart.png"))
	return nil
}

func hasHTTPS(scens []scenario) bool {
	for _, s := range scens {
		if s.tls != "" {
			return true
		}
	}
	return false
}

func hasCache(scens []scenario) bool {
	for _, s := range scens {
		if s.cache {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// firstErrorLine skips go build's "# package" headers.
func firstErrorLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return firstLine(out)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func rotate(list []string, k int) []string {
	out := make([]string, 0, len(list))
	for i := range list {
		out = append(out, list[(i+k)%len(list)])
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 32; i++ {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module switchflow") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("run from inside the switchflow repository (no go.mod with module switchflow above the working directory)")
}

// raiseFileLimit lifts RLIMIT_NOFILE as far as allowed; children inherit it,
// which c1024 and idle10k need.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := uint64(1 << 16)
	if lim.Max < want {
		// Root may raise the hard limit too.
		try := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &try) == nil {
			return
		}
	}
	lim.Cur = min(want, lim.Max)
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < 11000 {
		fmt.Fprintf(os.Stderr, "bench: warning: open-file limit is %d; idle10k needs more than 10,000\n", lim.Cur)
	}
}

// lookTool finds a program on PATH or in /usr/sbin, where Debian puts
// nginx and haproxy.
func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// prepareTools finds taskset, wrk, nginx and haproxy, running
// scripts/install-bench-deps.sh once if any needed one is missing.
func (r *runner) prepareTools() error {
	if lookTool("taskset") == "" {
		return errors.New("taskset not found (Debian package util-linux)")
	}
	needed := []string{"wrk"}
	for _, p := range []string{"nginx", "haproxy"} {
		if contains(r.opt.proxies, p) {
			needed = append(needed, p)
		}
	}
	missing := false
	for _, t := range needed {
		if lookTool(t) == "" {
			missing = true
		}
	}
	if missing {
		fmt.Fprintln(os.Stderr, "bench: installing missing tools with scripts/install-bench-deps.sh")
		ctx, cancel := context.WithTimeout(r.ctx, 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(r.repoRoot, "scripts", "install-bench-deps.sh"))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: install-bench-deps.sh: %v\n", err)
		}
	}
	for _, t := range needed {
		p := lookTool(t)
		switch {
		case p != "":
			r.bins[t] = p
		case t == "wrk":
			return errors.New("wrk not found; run scripts/install-bench-deps.sh")
		default:
			r.skip[t] = t + " is not installed; run scripts/install-bench-deps.sh"
		}
	}
	return nil
}

// build compiles the origin, idleconns, the Go peers and SwitchFlow into
// out/bin. A SwitchFlow that does not build is skipped, not fatal.
func (r *runner) build() error {
	bin := filepath.Join(r.outDir, "bin")
	pkgs := map[string]string{
		"origin":    "./benchmarks/origin",
		"idleconns": "./benchmarks/cmd/idleconns",
		"fastproxy": "./benchmarks/peers/fastproxy",
		"stdproxy":  "./benchmarks/peers/stdproxy",
		"gnetfwd":   "./benchmarks/peers/gnetfwd",
		"hsload":    "./benchmarks/cmd/hsload",
	}
	for _, name := range []string{"origin", "idleconns", "fastproxy", "stdproxy", "gnetfwd", "hsload"} {
		if name != "origin" && name != "idleconns" && name != "hsload" && !contains(r.opt.proxies, name) {
			continue
		}
		if name == "hsload" && !r.https {
			continue
		}
		dst := filepath.Join(bin, name)
		if out, err := r.goBuild(dst, pkgs[name]); err != nil {
			return fmt.Errorf("building %s: %v\n%s", name, err, out)
		}
		r.bins[name] = dst
	}
	if !contains(r.opt.proxies, "switchflow") {
		return nil
	}
	if r.opt.switchflow != "" {
		p, err := filepath.Abs(r.opt.switchflow)
		if err != nil {
			return err
		}
		if _, err := os.Stat(p); err != nil {
			r.skip["switchflow"] = "-switchflow " + r.opt.switchflow + ": " + err.Error()
			return nil
		}
		r.bins["switchflow"] = p
		return nil
	}
	dst := filepath.Join(r.outDir, "switchflow")
	if out, err := r.goBuild(dst, "."); err != nil {
		msg := strings.TrimSpace(string(out))
		if lines := strings.Split(msg, "\n"); len(lines) > 6 {
			msg = strings.Join(lines[:6], "\n") + "\n..."
		}
		fmt.Fprintf(os.Stderr, "bench: SwitchFlow does not build (go build .: %v); it is skipped:\n%s\n", err, msg)
		r.skip["switchflow"] = "`go build .` failed: " + firstErrorLine(msg)
		return nil
	}
	r.bins["switchflow"] = dst
	return nil
}

func (r *runner) goBuild(dst, pkg string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Minute)
	defer cancel()
	// go.mod replaces gnet with the patched copy that scripts/gnet.sh makes (a no-op when it is current).
	gnet := exec.CommandContext(ctx, "bash", filepath.Join(r.repoRoot, "scripts", "gnet.sh"))
	gnet.Dir = r.repoRoot
	if out, err := gnet.CombinedOutput(); err != nil {
		return out, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dst, pkg)
	cmd.Dir = r.repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd.CombinedOutput()
}

func (r *runner) startOrigin() error {
	addr, err := freePort()
	if err != nil {
		return err
	}
	dir := filepath.Join(r.outDir, "run")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p, err := r.sup.start("origin", r.opt.loadCPU, filepath.Join(dir, "origin.log"), []string{"GOMAXPROCS=1"}, false,
		r.bins["origin"], "-addr", addr, "-name", "bench")
	if err != nil {
		return err
	}
	if err := waitReady(p, addr, 10*time.Second); err != nil {
		return err
	}
	r.origin, r.originAddr = p, addr
	return nil
}
