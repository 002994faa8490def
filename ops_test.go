package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchflow/config"
	"switchflow/internal/sockettest"
)

// TestCheckShowsMemoryAndDumpsEffectiveFile: -t prints the worst-case memory line with each term; -T
// prints the effective file, every default filled in, which checks again and parses to the same
// configuration; -h lists every flag.
func TestCheckShowsMemoryAndDumpsEffectiveFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "sf.toml")
	os.WriteFile(src, []byte("[server]\nmax_connections = 1000\nheader_buffer = \"4KiB\"\nio_buffer = \"32KiB\"\nloops = 2\n[cache]\nmax_size = \"1MiB\"\n"+
		"[[upstream]]\nname = \"a\"\nservers = [ { addr = \"127.0.0.1:9\" } ]\n[upstream.health_check]\n[[route]]\nupstream = \"a\"\ncache_ttl = \"1s\"\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"-t", "-config", src}, &out, &errb); code != 0 {
		t.Fatalf("-t: exit %d %s", code, errb.String())
	}
	// 1000 × (4096+40) + 62 × 65536 + 2 × 32768 × 1000 + 2 × 32768 + 1 MiB = 74,849,344 bytes, 71.4 MiB.
	want := "worst-case memory: 71.4 MiB = header slabs 3.9 MiB (max_connections 1000 × (header_buffer 4KiB + 40)) + " +
		"large header slabs 3.9 MiB (large_header_buffers 62 × large_header_buffer 64KiB) + " +
		"io buffers 62.5 MiB (2 × io_buffer 32KiB × max_connections 1000) + loop read buffers 64.0 KiB (loops 2 × 32KiB) + cache 1.0 MiB (cache.max_size 1MiB)\n"
	if out.String() != "configuration ok\n"+want {
		t.Fatalf("-t output:\n%s\nwant the memory line\n%s", out.String(), want)
	}

	out.Reset()
	if code := run([]string{"-T", "-config", src}, &out, &errb); code != 0 {
		t.Fatalf("-T: exit %d %s", code, errb.String())
	}
	for _, key := range []string{"large_header_buffer = \"64KiB\"", "keepalive = 256", "[upstream.health_check]", "path = \"/healthz\"", "access_format = \"combined\"", "pid_file = \"\"", "# configuration ok\n# worst-case memory: "} {
		if !strings.Contains(out.String(), key) {
			t.Errorf("-T output lacks %s:\n%s", key, out.String())
		}
	}
	dumped := filepath.Join(dir, "dumped.toml")
	os.WriteFile(dumped, out.Bytes(), 0o644)
	out.Reset()
	if code := run([]string{"-t", "-config", dumped}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "configuration ok\n") {
		t.Fatalf("-t on -T's output: exit %d %q %q", code, out.String(), errb.String())
	}
	a, err1 := config.Load(src)
	b, err2 := config.Load(dumped)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("-T's output is another configuration: %v %v\n%+v\n%+v", err1, err2, a, b)
	}

	errb.Reset()
	if code := run([]string{"-h"}, &out, &errb); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	for _, flag := range []string{"-config", "-t\t", "-T\t", "-version", "-cpuprofile", "SIGUSR1"} {
		if !strings.Contains(errb.String(), flag) {
			t.Errorf("-h does not list %s:\n%s", flag, errb.String())
		}
	}
}

// TestOperatorSignalsJSON drives the binary with log.format = "json": every line on stderr is JSON (gnet's
// own included); pid_file is written once it listens and removed at exit; SIGUSR1 after a rename of the
// access log writes the next request's line to a new file and does nothing else; a refused reload lists
// its problems as a JSON array and counts on /metrics, as an applied one does.
func TestOperatorSignalsJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "switchflow")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	origin := testOrigin(t, "a")
	sk := sockettest.NewSet(t)
	addr, adminAddr := sk.AddListen(), sk.AddAdmin()
	pidFile := filepath.Join(dir, "sf.pid")
	access := filepath.Join(dir, "access.log")
	cfgPath := filepath.Join(dir, "sf.toml")
	good := fmt.Sprintf("[server]\nlisten = %q\nloops = 1\npid_file = %q\n[admin]\nlisten = %q\n[log]\nformat = \"json\"\naccess = %q\n"+
		"[[upstream]]\nname = \"o\"\nservers = [ { addr = %q } ]\n[[route]]\nupstream = \"o\"\n", addr, pidFile, adminAddr, access, origin)
	os.WriteFile(cfgPath, []byte(good), 0o644)
	cmd := exec.Command(bin, "-config", cfgPath)
	var logs lockedBuffer
	cmd.Stderr = &logs
	err := sk.Start(cmd) // returns once it serves the sockets
	if cmd.Process != nil {
		defer cmd.Process.Kill()
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }
	poll("the pid file", func() bool { return read(pidFile) == strconv.Itoa(cmd.Process.Pid)+"\n" })
	get := func(path string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get("/before-rotate")
	poll("the first access log line", func() bool { return strings.Contains(read(access), "/before-rotate") })
	rotated := access + ".1"
	if err := os.Rename(access, rotated); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	poll("a new access log", func() bool { _, err := os.Stat(access); return err == nil })
	get("/after-rotate")
	poll("the line in the new file", func() bool { return strings.Contains(read(access), "/after-rotate") })
	if strings.Contains(read(rotated), "/after-rotate") {
		t.Fatal("the renamed file got the line written after SIGUSR1")
	}
	if l := logs.String(); !strings.Contains(l, `"msg":"reopening the log files"`) || strings.Contains(l, "reload") {
		t.Fatalf("SIGUSR1 did more than reopen:\n%s", l)
	}
	metric := func(name string) string {
		resp, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, name+" ") {
				return strings.TrimPrefix(line, name+" ")
			}
		}
		return ""
	}
	if v := metric(`switchflow_config_reloads_total{result="ok"}`); v != "0" {
		t.Fatalf("reloads before any: %q", v)
	}

	os.WriteFile(cfgPath, []byte(good+"[cache]\nmax_szie = 1\n[[route]]\npath_prefix = \"/x/\"\nupstream = \"missing\"\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, &logs, "reload refused", 1)
	var refused struct {
		Problems []string `json:"problems"`
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "reload refused") {
			json.Unmarshal([]byte(line), &refused)
		}
	}
	if len(refused.Problems) != 2 || !strings.HasPrefix(refused.Problems[0], "cache.max_szie: unknown key") || !strings.HasPrefix(refused.Problems[1], "route[1].upstream: ") {
		t.Fatalf("refused reload's problems: %q\n%s", refused.Problems, logs.String())
	}
	if v := metric(`switchflow_config_reloads_total{result="refused"}`); v != "1" || metric("switchflow_config_last_reload_successful") != "0" {
		t.Fatalf("refused reloads: %q", v)
	}
	os.WriteFile(cfgPath, []byte(good), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, &logs, "configuration reloaded", 1)
	poll("the reload counted", func() bool {
		return metric(`switchflow_config_reloads_total{result="ok"}`) == "1" && metric("switchflow_config_last_reload_successful") == "1"
	})

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Fatalf("pid file left at exit: %v", err)
	}
	var sawGnet bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON line: %s", line)
		}
		sawGnet = sawGnet || strings.Contains(line, "Launching gnet")
	}
	if !sawGnet {
		t.Errorf("gnet's start line is not in the log:\n%s", logs.String())
	}
}

// TestCheckWarnsStripPrefixWithoutSlash: -t passes the file and warns on stderr about a strip_prefix route
// whose prefix matches more than its path segment.
func TestCheckWarnsStripPrefixWithoutSlash(t *testing.T) {
	f := filepath.Join(t.TempDir(), "strip.toml")
	os.WriteFile(f, []byte("[[upstream]]\nname = \"a\"\nservers = [ { addr = \"127.0.0.1:9001\" } ]\n[[route]]\npath_prefix = \"/api\"\nstrip_prefix = true\nupstream = \"a\"\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"-t", "-config", f}, &out, &errb); code != 0 || !strings.Contains(errb.String(), `warning: route[0]: strip_prefix with path_prefix "/api"`) {
		t.Fatalf("-t: exit %d, stderr %q", code, errb.String())
	}
}
