package upstream

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// An upstream whose names have no address yet (resolve) is a group with no servers: every policy finds
// none, and the "no server up" line says why.
func TestEmptyGroupPicksNothing(t *testing.T) {
	var logged bytes.Buffer
	for _, b := range []string{RoundRobin, LeastConn, IPHash, P2C, Hash} {
		g, err := NewGroup("dns", nil, Settings{Balance: b, Log: slog.New(slog.NewTextHandler(&logged, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if s := NewPicker(g).PickKey(int64(time.Second), 0, 7, 7); s != nil {
			t.Fatalf("%s: picked %s from no servers", b, s.Name)
		}
	}
	if !strings.Contains(logged.String(), "no address yet") {
		t.Fatalf("log: %s", logged.String())
	}
}

// An address of a followed name is told apart by its Name, but requests without Host and the health
// checks send the name as configured.
func TestFollowedAddressSendsConfiguredHost(t *testing.T) {
	g, err := NewGroup("dns", []ServerSpec{{
		Name: "app.internal:8080 (10.0.0.3)", Host: "app.internal:8080",
		Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 3), Port: 8080}, Weight: 1,
	}}, Settings{Balance: RoundRobin, Health: &HealthSettings{Path: "/healthz", Interval: time.Second, Timeout: time.Second, ExpectStatus: 200, Rise: 1, Fall: 1}})
	if err != nil {
		t.Fatal(err)
	}
	s := g.Servers[0]
	if string(s.HostHeader) != "app.internal:8080" || !bytes.Contains(s.healthReq, []byte("\r\nHost: app.internal:8080\r\n")) {
		t.Fatalf("Host header %q, health request %q", s.HostHeader, s.healthReq)
	}
}
