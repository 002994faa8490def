// Reading the decoded TOML tree: each table's keys taken by type, every problem named by its key,
// unknown keys answered with the nearest known one.

package config

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

func (t *table) key(k string) string {
	if t.path == "" {
		return k
	}
	return t.path + "." + k
}

func (t *table) get(k string) (any, bool) {
	t.seen[k] = true
	v, ok := t.m[k]
	return v, ok
}

// finish reports every key of the table that no getter asked for.
func (t *table) finish() {
	var unknown []string
	for k := range t.m {
		if !t.seen[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	known := make([]string, 0, len(t.seen))
	for k := range t.seen {
		known = append(known, k)
	}
	slices.Sort(known)
	for _, k := range unknown {
		if s := suggest(k, known); s != "" {
			t.d.addf(t.key(k), "unknown key (did you mean %q?)", s)
		} else {
			t.d.addf(t.key(k), "unknown key")
		}
	}
}

func (t *table) str(k string, dst *string) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	s, isStr := v.(string)
	if !isStr {
		t.d.wrongType(t.key(k), "a string", v)
		return
	}
	*dst = s
}

func (t *table) boolean(k string, dst *bool) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	b, isBool := v.(bool)
	if !isBool {
		t.d.wrongType(t.key(k), "a boolean (true or false)", v)
		return
	}
	*dst = b
}

func (t *table) integer(k string, dst *int) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	n, isInt := v.(int64)
	if !isInt {
		t.d.wrongType(t.key(k), "an integer", v)
		return
	}
	if n < math.MinInt || n > math.MaxInt {
		t.d.invalid(t.key(k), "%d is out of range", n)
		return
	}
	*dst = int(n)
}

// size decodes an integer number of bytes or a size string (ParseSize).
func (t *table) size(k string, dst *int64) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	switch x := v.(type) {
	case int64:
		if x < 0 {
			t.d.invalid(t.key(k), "%v", errNegativeSize)
			return
		}
		*dst = x
	case string:
		n, err := ParseSize(x)
		if err != nil {
			t.d.invalid(t.key(k), "%v", err)
			return
		}
		*dst = n
	default:
		t.d.wrongType(t.key(k), `a size (an integer number of bytes or a string such as "8KiB")`, v)
	}
}

// sizeInt is size for fields held as int.
func (t *table) sizeInt(k string, dst *int) {
	n := int64(*dst)
	t.size(k, &n)
	if n > math.MaxInt {
		t.d.invalid(t.key(k), "%d is out of range", n)
		return
	}
	*dst = int(n)
}

func (t *table) duration(k string, dst *time.Duration) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	s, isStr := v.(string)
	if !isStr {
		t.d.wrongType(t.key(k), `a duration string such as "250ms" or "30s"`, v)
		return
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		t.d.invalid(t.key(k), "invalid duration %q: want a Go duration such as \"250ms\", \"30s\" or \"1m30s\"", s)
		return
	}
	*dst = dur
}

// sub returns the sub-table at k, or nil when k is absent or not a table.
func (t *table) sub(k string) *table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		hint := "a table"
		if _, isArr := v.([]map[string]any); isArr {
			h := tomlHeader(t.key(k))
			hint = fmt.Sprintf("a table ([%s], not [[%s]])", h, h)
		}
		t.d.wrongType(t.key(k), hint, v)
		return nil
	}
	return &table{d: t.d, path: t.key(k), m: m, seen: map[string]bool{}}
}

// tomlHeader is the table header a key is written under in TOML: its path without the array indices
// ("upstream[0].health_check" is written [upstream.health_check], inside the [[upstream]] it belongs to).
func tomlHeader(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		if key[i] == '[' {
			if j := strings.IndexByte(key[i:], ']'); j > 0 {
				i += j
				continue
			}
		}
		b.WriteByte(key[i])
	}
	return b.String()
}

// tables returns the array of tables at k. An element that is not a table
// comes back as nil, so that the indices of the others stay as written.
func (t *table) tables(k string) (elems []*table, present bool) {
	v, ok := t.get(k)
	if !ok {
		return nil, false
	}
	var items []any
	switch x := v.(type) {
	case []map[string]any:
		for _, m := range x {
			items = append(items, m)
		}
	case []any:
		items = x
	default:
		hint := "an array of tables"
		if _, isMap := v.(map[string]any); isMap && t.path == "" {
			hint = fmt.Sprintf("an array of tables ([[%s]], not [%s])", k, k)
		}
		t.d.wrongType(t.key(k), hint, v)
		return nil, true
	}
	elems = make([]*table, len(items))
	for i, item := range items {
		key := fmt.Sprintf("%s[%d]", t.key(k), i)
		m, isMap := item.(map[string]any)
		if !isMap {
			t.d.wrongType(key, "a table", item)
			continue
		}
		elems[i] = &table{d: t.d, path: key, m: m, seen: map[string]bool{}}
	}
	return elems, true
}

// stringList decodes a string or an array of strings, and in keys the key that names each one where a
// problem is reported: k itself for a string, k[i] with the element's place in the file for an array
// (an element of the wrong type is dropped, and the others keep their own index).
func (t *table) stringList(k string, dst, keys *[]string) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	switch x := v.(type) {
	case string:
		*dst, *keys = []string{x}, []string{t.key(k)}
	case []any:
		list := make([]string, 0, len(x))
		names := make([]string, 0, len(x))
		for i, item := range x {
			key := fmt.Sprintf("%s[%d]", t.key(k), i)
			s, isStr := item.(string)
			if !isStr {
				t.d.wrongType(key, "a string", item)
				continue
			}
			list, names = append(list, s), append(names, key)
		}
		*dst, *keys = list, names
	default:
		t.d.wrongType(t.key(k), "a string or an array of strings", v)
	}
}

// tomlType names the TOML type of a decoded value, for error messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a datetime"
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

// suggest returns the known key closest to k when it is close enough to be
// a likely typo, else "".
func suggest(k string, known []string) string {
	best, bestDist := "", 3
	for _, cand := range known {
		if dist := editDistance(strings.ToLower(k), cand); dist < bestDist {
			best, bestDist = cand, dist
		}
	}
	if bestDist >= len(k) {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
