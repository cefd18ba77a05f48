package bundle

import "strings"

// RedactURL returns s with what may be user info ("user:password@", a token
// before '@') replaced by "…@", for messages that name a URL: they reach
// logs, /readyz, an API's status, Events and the CLIs' output. It works on
// URLs that do not parse too (url.URL.Redacted needs one that does), and errs
// on the side of hiding: everything between the scheme and the last '@' goes.
func RedactURL(s string) string {
	prefix, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		prefix, rest = s[:i+3], s[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	return prefix + "…@" + rest[at+1:]
}
