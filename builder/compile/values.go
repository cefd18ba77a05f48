package compile

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// Readers for extension values. Extension values arrive as generic JSON or
// YAML values (numbers as float64, int or json.Number); each reader returns a
// reason when the value has the wrong shape.

func asString(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func asBool(v any) (bool, bool) {
	b, ok := v.(bool)
	return b, ok
}

// asStrings accepts a string or a list of strings.
func asStrings(v any) ([]string, bool) {
	switch t := v.(type) {
	case string:
		return []string{t}, true
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	case []string:
		return t, true
	}
	return nil, false
}

func asMap(v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	return m, ok
}

// asDuration accepts a Go duration string ("1.5s", "250ms") or a number of
// seconds.
func asDuration(v any) (bundle.Duration, error) {
	if s, ok := v.(string); ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration like \"5s\" or \"250ms\"", s)
		}
		if d < 0 {
			return 0, fmt.Errorf("%q is negative", s)
		}
		return bundle.Duration(d), nil
	}
	if f, ok := asFloat(v); ok {
		if f < 0 || f > 1e9 {
			return 0, fmt.Errorf("%v seconds is out of range", f)
		}
		return bundle.Duration(time.Duration(f * float64(time.Second))), nil
	}
	return 0, fmt.Errorf("want a duration like \"5s\" or a number of seconds, got %s", describe(v))
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	if _, ok := asFloat(v); ok {
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// unknownFields lists the keys of m not in known, sorted.
func unknownFields(m map[string]any, known ...string) []string {
	var out []string
	for k := range m {
		found := false
		for _, kn := range known {
			if k == kn {
				found = true
				break
			}
		}
		if !found {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

var nameUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// derivedName makes a stable name from free text (an operationId, a path).
func derivedName(parts ...string) string {
	s := nameUnsafe.ReplaceAllString(strings.Join(parts, "-"), "-")
	s = strings.Trim(s, "-.")
	if s == "" {
		return "root"
	}
	return s
}

var fileSafe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// fileName turns a name from the definition into one path element of a
// Binding file, hashing names that are not safe as they are.
func fileName(name string) string {
	if fileSafe.MatchString(name) && name != "." && name != ".." {
		return name
	}
	sum := sha256Hex([]byte(name))
	return "n-" + strings.TrimPrefix(sum, "sha256:")[:16]
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
