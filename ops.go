package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"switchflow/config"
)

// loadConfig loads the file at path.
func loadConfig(path string) (*config.Config, error) {
	return config.Load(path)
}

// writePidFile writes the process id to path ("" = none), with a newline, as nginx does.
func writePidFile(path string) error {
	if path == "" {
		return nil
	}
	return os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

// removePidFile removes the pid file at exit, if it still names this process: after an upgrade it names
// the new one.
func removePidFile(path string) {
	if path == "" {
		return
	}
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		_ = os.Remove(path)
	}
}

// reclaimPidFile writes this process's id to the pid file again after a failed upgrade, in case the new
// process wrote its own before it failed.
func reclaimPidFile(path string) error {
	if path == "" {
		return nil
	}
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		return nil
	}
	return writePidFile(path)
}

// logReloadRefused logs a refused reload: in text, a line saying so and one line per problem; in JSON,
// one line with the problems as an array.
func logReloadRefused(log *slog.Logger, format, path string, err error) {
	problems := strings.Split(err.Error(), "\n")
	const msg = "reload refused; the running configuration stays"
	if format == "json" {
		log.Error(msg, "file", path, "problems", problems)
		return
	}
	log.Error(msg, "file", path, "problems", len(problems))
	for _, p := range problems {
		log.Error("reload problem", "file", path, "problem", p)
	}
}

// usage prints every flag, for -h and mistakes.
func usage(fs *flag.FlagSet, w io.Writer) func() {
	return func() {
		fmt.Fprintln(w, "usage: switchflow [-config FILE] [-t | -T] [-version] [-cpuprofile FILE]")
		fmt.Fprintln(w, "signals: SIGHUP reloads the file, SIGUSR1 reopens the log files, SIGUSR2 upgrades to the executable now on disk, SIGTERM/SIGINT stop gracefully")
		fs.PrintDefaults()
	}
}
