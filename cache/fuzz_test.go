package cache

import (
	"testing"
	"time"

	"switchflow/codec"
)

// FuzzResponseTTL feeds backend-controlled Cache-Control and Age values to the policy: it must never
// panic, never keep a response longer than the route's TTL, and never keep one that says no-store.
func FuzzResponseTTL(f *testing.F) {
	for _, s := range []string{
		"max-age=5", "s-maxage=1, max-age=30", `private="x", max-age=3`, `ext="no-store, x"`, "no-store",
		"max-age=99999999999999999999", "max-age=", `max-age="`, ",,,", "max-age=5, no-cache=\"a,b\"",
	} {
		f.Add(s, "3")
	}
	f.Fuzz(func(t *testing.T, cc, age string) {
		raw := "HTTP/1.1 200 OK\r\nCache-Control: " + cc + "\r\nAge: " + age + "\r\nContent-Length: 0\r\n\r\n"
		var r codec.Response
		if _, err := codec.ParseResponse([]byte(raw), &r); err != nil {
			return // the engine answers 502 to what codec refuses; the policy never sees it
		}
		const ttl = 10 * time.Second
		keep, a := ResponseTTL(&r, ttl)
		if keep < 0 || keep > ttl || a < 0 {
			t.Fatalf("Cache-Control %q Age %q: keep %v age %d", cc, age, keep, a)
		}
		if keep > 0 {
			noStore := false
			eachDirective([]byte(cc), func(name, _ []byte) {
				noStore = noStore || equalFold(name, "no-store") || equalFold(name, "private") || equalFold(name, "no-cache")
			})
			if noStore {
				t.Fatalf("Cache-Control %q kept for %v", cc, keep)
			}
		}
	})
}
