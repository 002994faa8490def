package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestTOMLRoundTrip: the effective configuration that -T prints, every default filled in, parses back
// to the same Config: for the SPEC's example, for a minimal file, and for strings that need escaping.
func TestTOMLRoundTrip(t *testing.T) {
	for _, src := range []string{
		specExample,
		"[[upstream]]\nname = \"a\"\nservers = [ { addr = \"127.0.0.1:9\" } ]\n[[route]]\nupstream = \"a\"\n",
		`[server]
listen = ["127.0.0.1:8080", "127.0.0.1:8081"]
pid_file = "/run/sw \"q\" \\ \u0001.pid"
max_body_size = "1000"
max_headers = 250
large_header_buffers = 7
[admin]
[tls]
certificates = [ { cert = "a.crt", key = "a.key" }, { cert = "b.crt", key = "b.key" } ]
[resolver]
servers = ["10.0.0.2", "[::1]:5353"]
[[upstream]]
name = "a"
resolve = "45s"
servers = [ { addr = "127.0.0.1:9", weight = 3 }, { addr = "127.0.0.2:9", backup = true }, { addr = "app.internal:80" } ]
[upstream.health_check]
[upstream.tls]
cert = "client.crt"
key = "client.key"
insecure_skip_verify = true
[[upstream]]
name = "b"
balance = "hash"
hash_key = "cookie:session-id"
slow_start = "1m30s"
servers = [ { addr = "127.0.0.3:9" } ]
[[route]]
host = "*.Example.com"
path_prefix = "/api/"
strip_prefix = true
cache_ttl = "1500ms"
upstream = "b"
[[route]]
upstream = "a"
`,
	} {
		c, err := parse([]byte(src), fakeResolver{})
		if err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
		out := c.TOML()
		back, err := parse([]byte(out), fakeResolver{})
		if err != nil {
			t.Fatalf("-T output does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("-T output parses to another config:\n%s\n%+v\n%+v", out, c, back)
		}
		for _, key := range []string{"large_header_buffer = ", "large_header_buffers = ", "max_headers = ", "reuse_port = ", "access_format = ", "max_size = ", "keepalive = ", "retries = ", "hash_key = ", "slow_start = ", "resolve = "} {
			if !strings.Contains(out, key) {
				t.Errorf("-T output lacks the default %s:\n%s", key, out)
			}
		}
	}
}
