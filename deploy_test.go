package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchflow/config"
)

// unitKeys reads a systemd unit file into section → key → values (a key may repeat).
func unitKeys(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	units := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			units[section] = map[string][]string{}
		case section == "":
			t.Fatalf("%s:%d: a key before any section", path, n)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: not key=value: %q", path, n, line)
			}
			units[section][k] = append(units[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return units
}

// TestSystemdUnit: deploy/switchflow.service checks the file before it starts, reloads with SIGHUP, gives
// requests in flight longer than shutdown_timeout, has descriptors for the default max_connections, and
// keeps only CAP_NET_BIND_SERVICE. Where systemd-analyze is installed, the unit also passes its verify.
func TestSystemdUnit(t *testing.T) {
	const path = "deploy/switchflow.service"
	u := unitKeys(t, path)
	svc := u["Service"]
	if svc == nil || u["Unit"] == nil || u["Install"] == nil {
		t.Fatalf("sections %v, want Unit, Service and Install", u)
	}
	one := func(k string) string {
		t.Helper()
		if len(svc[k]) != 1 {
			t.Fatalf("Service.%s: %q, want exactly one", k, svc[k])
		}
		return svc[k][0]
	}
	start := strings.Fields(one("ExecStart"))
	pre := strings.Fields(one("ExecStartPre"))
	if len(start) != 3 || start[1] != "-config" {
		t.Fatalf("ExecStart %q, want BINARY -config FILE", start)
	}
	if len(pre) != 4 || pre[0] != start[0] || pre[1] != "-t" || pre[2] != "-config" || pre[3] != start[2] {
		t.Fatalf("ExecStartPre %q, want %s -t -config %s", pre, start[0], start[2])
	}
	if r := one("ExecReload"); r != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload %q, want SIGHUP to the main process", r)
	}
	if s := one("KillSignal"); s != "SIGTERM" {
		t.Errorf("KillSignal %q", s)
	}
	stop, err := time.ParseDuration(one("TimeoutStopSec"))
	if err != nil || stop <= config.DefaultServer().ShutdownTimeout {
		t.Errorf("TimeoutStopSec %q, want longer than shutdown_timeout's default %v", one("TimeoutStopSec"), config.DefaultServer().ShutdownTimeout)
	}
	nofile, err := strconv.Atoi(one("LimitNOFILE"))
	if need := 2*config.DefaultServer().MaxConnections + 1000; err != nil || nofile < need {
		t.Errorf("LimitNOFILE %q, want at least %d (two per connection of the default max_connections, and spare)", one("LimitNOFILE"), need)
	}
	for k, want := range map[string]string{
		"Type":                  "simple",
		"User":                  "switchflow",
		"AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
		"LogsDirectory":         "switchflow",
	} {
		if got := one(k); got != want {
			t.Errorf("Service.%s = %q, want %q", k, got, want)
		}
	}
	// SIGUSR2 moves the main PID to the new process; systemd follows it through the pid file, which the
	// RuntimeDirectory holds (created for User, as the proxy writes it).
	if pf := one("PIDFile"); !strings.HasPrefix(pf, "/run/"+one("RuntimeDirectory")+"/") {
		t.Errorf("PIDFile %q, want a file in RuntimeDirectory /run/%s", pf, one("RuntimeDirectory"))
	}
	if !strings.Contains(strings.Join(svc["ReadWritePaths"], " "), "/var/log/switchflow") {
		t.Errorf("ReadWritePaths %q lacks the log directory", svc["ReadWritePaths"])
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit was not verified by systemd")
		return
	}
	// verify wants the binary to exist: the unit, pointed at this test's own executable.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "switchflow.service")
	if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(string(raw), start[0], exe)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", tmp).CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
