package compile

import (
	"net/url"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// HasUserInfo reports whether a URL carries user info (user:password@ or a
// token@). The gateway refuses such an upstream URL, and the credentials
// would sit in the Bundle (the image) or the Binding ConfigMap: the compiler
// refuses them first, without quoting them.
func HasUserInfo(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return bundle.RedactURL(s) != s
	}
	return u.User != nil
}
