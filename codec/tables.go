package codec

import (
	"bytes"
	"encoding/binary"
)

// Byte classes, fasthttp style: one lookup per byte instead of a chain of comparisons. The tables are
// built once at package initialisation from the RFC grammar below and never written again.
const (
	clsToken  uint8 = 1 << iota // tchar (RFC 9110 5.6.2)
	clsValue                    // field-vchar, SP, HTAB (obs-text 0x80-0xFF included); excludes CTLs
	clsTarget                   // request-target bytes: VCHAR and obs-text; no SP, no CTL
	clsHost                     // uri-host [":" port]: unreserved, sub-delims, pct-encoded, ":", "[", "]"
	clsOWS                      // SP, HTAB
)

var byteClass = buildByteClass()

// hexValue maps a hex digit to its value and everything else to 0xFF.
var hexValue = buildHexValue()

// lowerTable maps ASCII upper case to lower case and leaves every other byte alone.
var lowerTable = buildLowerTable()

func buildByteClass() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		isAlpha := (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
		isDigit := b >= '0' && b <= '9'
		if isAlpha || isDigit || contains("!#$%&'*+-.^_`|~", b) {
			t[c] |= clsToken
		}
		if b == '\t' || (b >= 0x20 && b <= 0x7e) || b >= 0x80 {
			t[c] |= clsValue
		}
		if (b >= 0x21 && b <= 0x7e) || b >= 0x80 {
			t[c] |= clsTarget
		}
		if isAlpha || isDigit || contains("-._~!$&'()*+,;=:[]%", b) {
			t[c] |= clsHost
		}
		if b == ' ' || b == '\t' {
			t[c] |= clsOWS
		}
	}
	return t
}

func buildHexValue() (t [256]uint8) {
	for c := range t {
		t[c] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = uint8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = uint8(c - 'a' + 10)
		t[c-'a'+'A'] = uint8(c - 'a' + 10)
	}
	return t
}

func buildLowerTable() (t [256]uint8) {
	for c := range t {
		t[c] = uint8(c)
		if c >= 'A' && c <= 'Z' {
			t[c] = uint8(c + 'a' - 'A')
		}
	}
	return t
}

func contains(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

// equalFoldLower reports whether b equals lower (which must be lower case ASCII) ignoring ASCII case.
func equalFoldLower(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lowerTable[b[i]] != lower[i] {
			return false
		}
	}
	return true
}

// equalFold reports whether a and b are equal ignoring ASCII case.
func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerTable[a[i]] != lowerTable[b[i]] {
			return false
		}
	}
	return true
}

// trimOWS removes leading and trailing SP and HTAB.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && byteClass[b[0]]&clsOWS != 0 {
		b = b[1:]
	}
	for len(b) > 0 && byteClass[b[len(b)-1]]&clsOWS != 0 {
		b = b[:len(b)-1]
	}
	return b
}

// listIter walks a comma-separated list (RFC 9110 5.6.1), yielding every element with OWS trimmed,
// empty ones included, so callers decide whether "a,,b" or "a," is acceptable.
type listIter struct {
	list []byte
	done bool
}

func (it *listIter) next() (elem []byte, ok bool) {
	if it.done {
		return nil, false
	}
	i := bytes.IndexByte(it.list, ',')
	if i < 0 {
		it.done = true
		return trimOWS(it.list), true
	}
	elem = trimOWS(it.list[:i])
	it.list = it.list[i+1:]
	return elem, true
}

const (
	swarOnes  = 0x0101010101010101
	swarHighs = 0x8080808080808080
)

// invalidValueByte returns the index of the first byte of b that may not appear in a field value or
// reason phrase (a CTL other than HTAB, or DEL), or -1. It checks 8 bytes per step: a word with no
// byte below 0x20 and none equal to 0x7F is clean, and only a word that fails that test (a HTAB, say)
// is looked at byte by byte through the table.
func invalidValueByte(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		below20 := (x - 0x20*swarOnes) &^ x & swarHighs // some byte < 0x20 (bytes >= 0x80 excluded)
		y := x ^ 0x7f*swarOnes
		isDel := (y - swarOnes) &^ y & swarHighs // some byte == 0x7F
		if below20|isDel == 0 {
			continue
		}
		for j := i; j < i+8; j++ {
			if byteClass[b[j]]&clsValue == 0 {
				return j
			}
		}
	}
	for ; i < len(b); i++ {
		if byteClass[b[i]]&clsValue == 0 {
			return i
		}
	}
	return -1
}
