package engine

import (
	"bytes"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
)

// gnetStaleFormat is the line gnet logs for an event on a descriptor it no longer holds
// (reactor_default.go of the patched gnet that make gnet builds in .build/gnet).
const gnetStaleFormat = "received event[fd=%d|ev=%d|flags=%d] of a stale connection from event-loop(%d)"

// TestGnetStaleEventIsDebug: gnet's stale-event line goes to the log at debug level (it comes at every
// backend restart and loses nothing), every other gnet warning at warn.
func TestGnetStaleEventIsDebug(t *testing.T) {
	src, err := os.ReadFile("../.build/gnet/reactor_default.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte(strconv.Quote(gnetStaleFormat))) {
		t.Fatal("gnet no longer logs the stale-connection line this test knows: check gnetLogger.Warnf")
	}
	var buf bytes.Buffer
	g := gnetLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	g.Warnf(gnetStaleFormat, 12, 25, 0, 1)
	g.Warnf("event-loop(%d) is exiting due to error: %v", 0, "boom")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log lines: %q", lines)
	}
	if !strings.Contains(lines[0], "level=DEBUG") || !strings.Contains(lines[0], "fd=12|ev=25") {
		t.Errorf("stale-connection line: %s, want it at debug", lines[0])
	}
	if !strings.Contains(lines[1], "level=WARN") {
		t.Errorf("other gnet warning: %s, want it at warn", lines[1])
	}
}
