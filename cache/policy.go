package cache

import (
	"time"

	"switchflow/codec"
)

// RequestCacheable reports whether a request may be answered from the cache (or lead a fetch for it):
// GET or HEAD, no body, and neither Authorization nor Cookie (SPEC 3.6: those bypass the cache, since
// the answer may be personal). Anything else is a BYPASS.
func RequestCacheable(r *codec.Request) bool {
	if !(string(r.Method) == "GET" || string(r.Method) == "HEAD") {
		return false
	}
	if r.Body() != codec.BodyNone {
		return false
	}
	for i := 0; i < r.NumHeaders; i++ {
		name := r.Headers[i].Name
		if equalFold(name, "authorization") || equalFold(name, "cookie") {
			return false
		}
	}
	return true
}

// ResponseTTL returns how long a response may be kept, at most ttl (the route's cache_ttl), and the age
// it already had (its Age header, in seconds). keep is 0 when it must not be stored: a status other than
// 200, 301 or 404; Cache-Control no-store, private or no-cache; Set-Cookie; or Vary, because the key is
// host and target only and a varying response stored once would be served to clients it does not suit.
// max-age, or s-maxage which takes precedence for a shared cache, shortens the time, counted from the
// response's age.
func ResponseTTL(r *codec.Response, ttl time.Duration) (keep time.Duration, age int64) {
	switch r.Status {
	case 200, 301, 404:
	default:
		return 0, 0
	}
	maxAge, sMaxAge := int64(-1), int64(-1)
	for i := 0; i < r.NumHeaders; i++ {
		h := &r.Headers[i]
		switch {
		case equalFold(h.Name, "set-cookie"), equalFold(h.Name, "vary"):
			return 0, 0
		case equalFold(h.Name, "age"):
			if n, ok := parseSeconds(h.Value); ok {
				age = n
			}
		case equalFold(h.Name, "cache-control"):
			ok := true
			eachDirective(h.Value, func(name, value []byte) {
				switch {
				case equalFold(name, "no-store"), equalFold(name, "private"), equalFold(name, "no-cache"):
					ok = false
				case equalFold(name, "max-age"):
					if n, good := parseSeconds(value); good {
						maxAge = n
					} else {
						ok = false // a max-age nobody can read: do not guess
					}
				case equalFold(name, "s-maxage"):
					if n, good := parseSeconds(value); good {
						sMaxAge = n
					} else {
						ok = false
					}
				}
			})
			if !ok {
				return 0, 0
			}
		}
	}
	keep = ttl
	if sMaxAge >= 0 {
		maxAge = sMaxAge
	}
	if maxAge >= 0 {
		if left := time.Duration(maxAge-age) * time.Second; left < keep {
			keep = left
		}
	}
	if keep <= 0 {
		return 0, 0
	}
	return keep, age
}

// eachDirective calls fn for each directive of a Cache-Control value: name, and value with any quotes
// removed (nil when there is none).
func eachDirective(v []byte, fn func(name, value []byte)) {
	for len(v) > 0 {
		// One directive runs to the next comma outside quotes.
		end, inQuote := len(v), false
		for i := 0; i < len(v); i++ {
			if v[i] == '"' {
				inQuote = !inQuote
			} else if v[i] == ',' && !inQuote {
				end = i
				break
			}
		}
		d := trimSpace(v[:end])
		if end < len(v) {
			v = v[end+1:]
		} else {
			v = nil
		}
		if len(d) == 0 {
			continue
		}
		name, value := d, []byte(nil)
		for i := 0; i < len(d); i++ {
			if d[i] == '=' {
				name, value = trimSpace(d[:i]), trimSpace(d[i+1:])
				if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
					value = value[1 : len(value)-1]
				}
				break
			}
		}
		fn(name, value)
	}
}

// parseSeconds reads a delta-seconds value (RFC 9111 1.2.2): digits only; very large values saturate.
func parseSeconds(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<40 {
			n = n*10 + int64(c-'0')
		}
	}
	return n, true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with a lower-case ASCII string, ignoring the case of b.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
