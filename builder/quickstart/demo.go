package quickstart

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// Demo is a request to show: with credentials it succeeds, without them the
// gateway refuses it.
type Demo struct {
	Route bundle.Route
	// OK is a curl command that gets an answer; Refused is the same request
	// without credentials ("" when the route is public).
	OK, Refused string
	// RefusedBy names the scheme whose absence Refused shows.
	RefusedBy string
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// PickDemo chooses a GET route with an endpoint to show, preferring one guarded by an API key
// (the simplest credential to read on a command line), then one without
// path parameters, and skips routes with required query or header
// parameters. It returns nil when no GET route can be called with the
// credentials at hand. It is pure.
func PickDemo(b *bundle.Bundle, creds []Credential, baseURL string) *Demo {
	byScheme := map[string]Credential{}
	for _, c := range creds {
		if c.Presentable() {
			byScheme[c.Scheme] = c
		}
	}
	needs := requiredParams(b)
	var best *Demo
	bestScore := -1
	for _, r := range b.Routes {
		// A route without an endpoint answers 503 whatever is sent.
		if r.Method != "GET" || r.Endpoint == "" || needs[r.Method+" "+r.Path] {
			continue
		}
		alt, ok := usable(r.Security, byScheme)
		if !ok {
			continue
		}
		score := 0
		for _, s := range alt {
			if byScheme[s.Name].Type == bundle.SchemeAPIKey {
				score += 4
			}
		}
		if len(r.Security) > 0 {
			score += 2
		}
		if !strings.Contains(r.Path, "{") {
			score++
		}
		if score <= bestScore {
			continue
		}
		bestScore = score
		url := strings.TrimSuffix(baseURL, "/") + pathParam.ReplaceAllString(r.Path, "1")
		var args []string
		var query []string
		for _, s := range alt {
			a, q := byScheme[s.Name].Curl()
			args = append(args, a...)
			if q != "" {
				query = append(query, q)
			}
		}
		okURL := url
		if len(query) > 0 {
			okURL += "?" + strings.Join(query, "&")
		}
		d := &Demo{Route: r, OK: strings.Join(append(append([]string{"curl", "-i"}, args...), shellQuote(okURL)), " ")}
		if len(alt) > 0 {
			d.RefusedBy = alt[0].Name
			d.Refused = "curl -i " + shellQuote(url)
		}
		best = d
	}
	return best
}

// usable returns the first alternative whose every scheme has a credential;
// a public route (no requirement, or an empty alternative) needs none.
func usable(reqs []bundle.SecurityRequirement, creds map[string]Credential) (bundle.SecurityRequirement, bool) {
	if len(reqs) == 0 {
		return nil, true
	}
	for _, alt := range reqs {
		if len(alt) == 0 {
			return nil, true
		}
	}
	for _, alt := range reqs {
		all := true
		for _, s := range alt {
			if _, ok := creds[s.Name]; !ok {
				all = false
			}
		}
		if all {
			return alt, true
		}
	}
	return nil, false
}

// requiredParams marks "METHOD path" of operations that need a query, header
// or cookie parameter, which a demo request would not send.
func requiredParams(b *bundle.Bundle) map[string]bool {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	out := map[string]bool{}
	if err := json.Unmarshal(b.OpenAPI, &doc); err != nil {
		return out
	}
	type param struct {
		In       string `json:"in"`
		Required bool   `json:"required"`
		Ref      string `json:"$ref"`
	}
	needs := func(ps []param) bool {
		for _, p := range ps {
			// A $ref'd parameter may be required: assume it is.
			if p.Ref != "" || (p.Required && p.In != "path") {
				return true
			}
		}
		return false
	}
	var pathLevel []param
	var op struct {
		Parameters []param `json:"parameters"`
	}
	base := strings.TrimSuffix(b.API.BasePath, "/")
	for _, r := range b.Routes {
		for key, item := range doc.Paths {
			if key != r.UpstreamPath && base+key != r.Path {
				continue
			}
			pathLevel, op.Parameters = nil, nil
			_ = json.Unmarshal(item["parameters"], &pathLevel)
			if raw, ok := item[strings.ToLower(r.Method)]; ok {
				_ = json.Unmarshal(raw, &op)
			}
			if needs(pathLevel) || needs(op.Parameters) {
				out[r.Method+" "+r.Path] = true
			}
		}
	}
	return out
}
