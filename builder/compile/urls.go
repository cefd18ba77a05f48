package compile

import (
	"net/url"
	"strings"
)

// RedactURL returns s with what may be user info ("user:password@", a token
// before '@') replaced by "…@", for messages that name a URL: they reach an
// API's status, Events and the CLI's output. It works on URLs that do not
// parse too, and errs on the side of hiding: everything between the scheme
// and the last '@' goes.
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

// HasUserInfo reports whether a URL carries user info (user:password@ or a
// token@). The gateway refuses such an upstream URL, and the credentials
// would sit in the Bundle (the image) or the Binding ConfigMap: the compiler
// refuses them first, without quoting them.
func HasUserInfo(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return RedactURL(s) != s
	}
	return u.User != nil
}
