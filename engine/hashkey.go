package engine

import (
	"net/netip"

	"switchflow/codec"
	"switchflow/upstream"
)

// requestKeyHash is the 64-bit FNV-1a hash of the request's hash_key for balance = "hash" (SPEC 3.5),
// computed in startRequest while the parsed head is valid and kept in the exchange for every attempt:
//
//	uri          the request target as received, path and query (an absolute-form target's origin part)
//	client_ip    the client's address (all 16 bytes of its IPv6 form)
//	header:NAME  the values of the NAME headers (name matched case-insensitively), in order, comma-joined
//	cookie:NAME  the value of the first NAME cookie of the Cookie headers
//
// A request without the header or the cookie (or with an empty value) hashes its client address: the
// client still sticks to one server, and such requests spread over the servers rather than all landing
// on the server of the empty key. It never allocates.
func requestKeyHash(g *upstream.Group, req *codec.Request, path []byte, ip netip.Addr) uint64 {
	switch g.HashKey {
	case upstream.KeyURI:
		return fnvAdd(fnvOffset, path)
	case upstream.KeyHeader:
		h, found := uint64(fnvOffset), false
		for _, hd := range req.HeaderList() {
			if len(hd.Value) == 0 || !asciiEqualFold(hd.Name, g.HashKeyName) {
				continue
			}
			if found {
				h = fnvByte(h, ',')
			}
			h, found = fnvAdd(h, hd.Value), true
		}
		if found {
			return h
		}
	case upstream.KeyCookie:
		for _, hd := range req.HeaderList() {
			if !asciiEqualFold(hd.Name, "Cookie") {
				continue
			}
			if v, ok := cookieValue(hd.Value, g.HashKeyName); ok && len(v) > 0 {
				return fnvAdd(fnvOffset, v)
			}
		}
	}
	return clientIPHash(ip)
}

// clientIPHash hashes the client address; the array form, as AsSlice would allocate.
func clientIPHash(ip netip.Addr) uint64 {
	a := ip.As16()
	return fnvAdd(fnvOffset, a[:])
}

// cookieValue finds name in a Cookie header value ("a=1; b=2", RFC 6265 5.4), spaces around pairs
// and values trimmed; a pair without "=" is skipped.
func cookieValue(header []byte, name string) ([]byte, bool) {
	for len(header) > 0 {
		var pair []byte
		if i := indexByte(header, ';'); i >= 0 {
			pair, header = header[:i], header[i+1:]
		} else {
			pair, header = header, nil
		}
		pair = trimOWS(pair)
		eq := indexByte(pair, '=')
		if eq < 0 {
			continue
		}
		if string(trimOWS(pair[:eq])) == name { // no allocation: the conversion is only compared
			v := trimOWS(pair[eq+1:])
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return nil, false
}

const fnvOffset = 14695981039346656037

func fnvAdd(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

func fnvByte(h uint64, c byte) uint64 { return (h ^ uint64(c)) * 1099511628211 }

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
