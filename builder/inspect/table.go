package inspect

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// Table writes l as tables: the API, its routes with what each applies, and
// the security schemes, endpoints and rate-limit policies the routes name.
// It is pure: the same Loaded gives the same bytes.
func Table(w io.Writer, l *Loaded) error {
	b := l.Bundle
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	row("API", b.API.Title+" "+b.API.Version)
	row("BASE PATH", b.API.BasePath)
	row("DEFINITION", specName(b.API.SpecVersion))
	row("SOURCE", l.Ref)
	if d := l.Labels[image.LabelInputsDigest]; d != "" {
		row("INPUTS DIGEST", d)
	}
	if base := l.Labels[image.OCIBaseName]; base != "" {
		row("RUNTIME BASE", base+"@"+l.Labels[image.OCIBaseDigest])
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nROUTES (%d)\n", len(b.Routes))
	row("METHOD", "PATH", "OPERATION", "ENDPOINT", "SECURITY", "RATE LIMITS", "VALIDATION", "TIMEOUT")
	for _, r := range b.Routes {
		row(r.Method, r.Path, dash(r.OperationID), dash(r.Endpoint), security(r.Security), dash(strings.Join(r.RateLimits, ", ")),
			validation(r.Validation), duration(r.Timeout))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(b.SecuritySchemes) > 0 {
		fmt.Fprintln(w, "\nSECURITY SCHEMES")
		row("NAME", "TYPE", "DETAILS")
		for _, n := range b.SchemeNames() {
			s := b.SecuritySchemes[n]
			row(n, s.Type, dash(schemeDetails(s)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(b.Endpoints) > 0 {
		fmt.Fprintln(w, "\nENDPOINTS")
		row("NAME", "DEFAULT URLS", "POLICY")
		for _, n := range b.EndpointNames() {
			e := b.Endpoints[n]
			row(n, dash(strings.Join(e.URLs, ", ")), dash(endpointPolicy(e)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(b.RateLimits) > 0 {
		fmt.Fprintln(w, "\nRATE LIMITS")
		row("NAME", "DEFAULT")
		for _, n := range b.RateLimitNames() {
			d := "- (set by the Binding)"
			if r := b.RateLimits[n].Default; r != nil {
				d = fmt.Sprintf("%d per %s", r.Requests, duration(r.Period))
				if r.Burst > 0 {
					d += fmt.Sprintf(", burst %d", r.Burst)
				}
			}
			row(n, d)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func specName(v string) string {
	if strings.HasPrefix(v, "2") {
		return "Swagger " + v + " (converted to OpenAPI 3)"
	}
	return "OpenAPI " + v
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// security renders alternatives as "a | b + c[scope]".
func security(reqs []bundle.SecurityRequirement) string {
	if len(reqs) == 0 {
		return "public"
	}
	alts := make([]string, 0, len(reqs))
	for _, alt := range reqs {
		if len(alt) == 0 {
			alts = append(alts, "public")
			continue
		}
		parts := make([]string, 0, len(alt))
		for _, s := range alt {
			p := s.Name
			if len(s.Scopes) > 0 {
				p += "[" + strings.Join(s.Scopes, ",") + "]"
			}
			parts = append(parts, p)
		}
		alts = append(alts, strings.Join(parts, " + "))
	}
	return strings.Join(alts, " | ")
}

func validation(v bundle.Validation) string {
	var parts []string
	if v.Request {
		parts = append(parts, "request")
	}
	if v.Response {
		parts = append(parts, "response")
	}
	if len(parts) == 0 {
		return "off"
	}
	return strings.Join(parts, "+")
}

func duration(d bundle.Duration) string {
	if d == 0 {
		return "-"
	}
	return time.Duration(d).String()
}

func schemeDetails(s bundle.SecurityScheme) string {
	switch s.Type {
	case bundle.SchemeAPIKey:
		return s.In + " " + s.Name
	case bundle.SchemeJWT:
		d := "bearer"
		if s.BearerFormat != "" {
			d += " " + s.BearerFormat
		}
		if s.OpenIDConnectURL != "" {
			d += ", OpenID Connect " + s.OpenIDConnectURL
		}
		return d
	case bundle.SchemeOAuth2:
		flows := make([]string, 0, len(s.Flows))
		for name, f := range s.Flows {
			scopes := make([]string, 0, len(f.Scopes))
			for sc := range f.Scopes {
				scopes = append(scopes, sc)
			}
			sort.Strings(scopes)
			flows = append(flows, name+" ("+strings.Join(scopes, ", ")+")")
		}
		sort.Strings(flows)
		return strings.Join(flows, "; ")
	}
	return ""
}

func endpointPolicy(e bundle.Endpoint) string {
	var parts []string
	if e.LoadBalance != "" {
		parts = append(parts, e.LoadBalance)
	}
	if e.Timeout != 0 {
		parts = append(parts, "timeout "+duration(e.Timeout))
	}
	if r := e.Retries; r != nil {
		parts = append(parts, fmt.Sprintf("%d retries", r.Attempts))
	}
	if cb := e.CircuitBreaker; cb != nil {
		parts = append(parts, fmt.Sprintf("circuit breaker after %d failures", cb.ConsecutiveFailures))
	}
	return strings.Join(parts, ", ")
}
