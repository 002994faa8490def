package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"switchflow/config"
	"switchflow/engine"
)

// loadConfig loads the file at path. A file that does not load and has a [tls] section is told both at
// once: its problems, and that this build cannot serve TLS (which it would learn only after fixing them).
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil && declaresTLS(path) {
		err = errors.Join(err, fmt.Errorf("tls: %w", engine.ErrTLSUnsupported))
	}
	return cfg, err
}

// declaresTLS reports whether the file at path has a [tls] table (whatever its keys hold).
func declaresTLS(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return false
	}
	_, ok := raw["tls"]
	return ok
}

// writePidFile writes the process id to path ("" = none), with a newline, as nginx does.
func writePidFile(path string) error {
	if path == "" {
		return nil
	}
	return os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
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
		fmt.Fprintln(w, "signals: SIGHUP reloads the file, SIGUSR1 reopens the log files, SIGTERM/SIGINT stop gracefully")
		fs.PrintDefaults()
	}
}
