package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits maps each accepted unit, lower-cased, to its multiplier.
// Binary units (KiB, MiB, ...) are powers of 1024; SI units (KB, MB, ...)
// are powers of 1000, as their names say. Bare "k", "m", "g" are refused:
// nginx reads them as 1024-based and most other tools as 1000-based, and a
// buffer size should not depend on which the reader assumed.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
}

// ParseSize parses a byte size: a non-negative integer, optionally followed
// (with or without a space) by a unit. Units, in any letter case: B; KiB,
// MiB, GiB, TiB (1024-based); KB, MB, GB, TB (1000-based). "8KiB" is 8192,
// "64KB" is 64000, "512" is 512. Fractions, signs and bare k/m/g are errors.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	n := 0
	for n < len(t) && t[n] >= '0' && t[n] <= '9' {
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("invalid size %q: want an integer number of bytes with an optional unit, such as \"8KiB\" or \"16MiB\"", s)
	}
	unit := strings.ToLower(strings.TrimSpace(t[n:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, or the 1000-based KB, MB, GB, TB)", s, t[n:])
	}
	v, err := strconv.ParseInt(t[:n], 10, 64)
	if err != nil || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return v * mult, nil
}

// FormatSize writes n in the largest binary unit that divides it exactly,
// so that FormatSize(8192) is "8KiB" and ParseSize reads it back.
func FormatSize(n int64) string {
	if n <= 0 {
		return strconv.FormatInt(n, 10)
	}
	for _, u := range [...]struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

var errNegativeSize = errors.New("must not be negative")
