package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	Key  string // key path such as "upstream[1].servers[0].addr"; "" for syntax and read errors
	Line int    // > 0 for syntax errors
	Msg  string
}

// String formats the problem as "key: msg", "line N: msg" or just msg.
func (p Problem) String() string {
	switch {
	case p.Key != "" && p.Line > 0:
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Key, p.Msg)
	case p.Key != "":
		return p.Key + ": " + p.Msg
	case p.Line > 0:
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return p.Msg
}

// Errors is every problem found in one configuration file. It is the only
// error type Load and Parse return.
type Errors struct {
	Problems []Problem
	cause    error // the read error behind a Load failure, for errors.Is
}

// Error lists the problems one per line, in key order.
func (e *Errors) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap returns the I/O error behind a Load failure, or nil.
func (e *Errors) Unwrap() error { return e.cause }

// problems collects Problems while a file is decoded or validated.
type problems struct {
	list []Problem
}

func (ps *problems) addf(key, format string, args ...any) {
	ps.list = append(ps.list, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// coveredBy reports whether key is, or lies under, one of the keys that
// already failed to decode, so that a wrong type is not reported a second
// time as a missing or out-of-range value.
func coveredBy(key string, bad map[string]bool) bool {
	for k := key; k != ""; k = parentKey(k) {
		if bad[k] {
			return true
		}
	}
	return false
}

// parentKey strips the last element of a key path: "a[1].b" → "a[1]" → "a".
func parentKey(k string) string {
	if strings.HasSuffix(k, "]") {
		if i := strings.LastIndexByte(k, '['); i >= 0 {
			return k[:i]
		}
	}
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		return k[:i]
	}
	return ""
}

// sortProblems puts syntax problems first, by line, then the others by key with array indices
// compared as numbers (upstream[2] before upstream[10]). The sort is stable,
// so several problems on one key keep the order they were found in.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if (a.Line > 0) != (b.Line > 0) {
			if a.Line > 0 {
				return -1
			}
			return 1
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return naturalCompare(a.Key, b.Key)
	})
}

func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, _ := strconv.Atoi(a[:da])
			nb, _ := strconv.Atoi(b[:db])
			if na != nb {
				return na - nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && n < 9 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
