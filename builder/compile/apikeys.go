package compile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// API keys reach the gateway only as hashes. The Binding's keys file
// (SecretFormatAPIKeys) holds one "id:sha256hex" line per key, sorted by id:
// id is the consumer (the Secret's key name), sha256hex the lower-case hex
// SHA-256 of the API key. The gateway hashes the key a client presents and
// compares hashes in constant time, so no readable key is ever mounted.

var sha256HexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// RenderAPIKeys renders a Secret's data (consumer id → API key, or
// "sha256:<hex>" of it) as the keys file. key selects one entry; empty means
// every entry. Surrounding white space of a value is not part of the key
// (Secrets made from files usually end in a newline).
func RenderAPIKeys(data map[string][]byte, key string) ([]byte, error) {
	ids := make([]string, 0, len(data))
	if key != "" {
		if _, ok := data[key]; !ok {
			return nil, fmt.Errorf("api keys: the Secret has no key %q", key)
		}
		ids = append(ids, key)
	} else {
		for id := range data {
			ids = append(ids, id)
		}
		sort.Strings(ids)
	}
	var out bytes.Buffer
	for _, id := range ids {
		if id == "" || strings.ContainsAny(id, ":\r\n") {
			return nil, fmt.Errorf("api keys: consumer id %q may not be empty or contain ':' or a line break", id)
		}
		v := strings.TrimSpace(string(data[id]))
		if v == "" {
			return nil, fmt.Errorf("api keys: the key of consumer %q is empty", id)
		}
		var sum string
		if h, ok := strings.CutPrefix(v, "sha256:"); ok {
			h = strings.ToLower(h)
			if !sha256HexRE.MatchString(h) {
				// The value is not quoted: the message reaches the API's
				// status, and a value that is not a hash may be a key.
				return nil, fmt.Errorf("api keys: consumer %q: the value starts with \"sha256:\" but is not sha256:<64 hex digits>", id)
			}
			sum = h
		} else {
			s := sha256.Sum256([]byte(v))
			sum = hex.EncodeToString(s[:])
		}
		out.WriteString(id)
		out.WriteByte(':')
		out.WriteString(sum)
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}
