package compile

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Problem codes. A caller (the operator's condition, the CLI) may switch on
// them; the Reason is for people.
const (
	CodeParseError         = "ParseError"
	CodeTooLarge           = "TooLarge"
	CodeNoVersion          = "NoVersion"
	CodeInvalidDefinition  = "InvalidDefinition"
	CodeUnresolvedRef      = "UnresolvedRef"
	CodeExternalRef        = "ExternalRef"
	CodeRemoteRef          = "RemoteRef"
	CodeDuplicateRoute     = "DuplicateRoute"
	CodeUnsupportedFeature = "UnsupportedFeature"
	CodeEndpointNotFound   = "EndpointNotFound"
	CodeRateLimitNotFound  = "RateLimitNotFound"
	CodeSecurityNotFound   = "SecurityNotFound"
	CodeSecurityMismatch   = "SecurityTypeMismatch"
	CodeCrossNamespaceRef  = "CrossNamespaceRef"
	CodeInvalidKinds       = "InvalidKinds"
	// CodeIgnoredExtension is a warning: an extension was read but the gateway
	// cannot honour it.
	CodeIgnoredExtension = "IgnoredExtension"
	// CodeNoEndpoint is a warning: operations name no endpoint and answer 503.
	CodeNoEndpoint = "NoEndpoint"
	// CodeNoOperations is a warning: there is nothing to route.
	CodeNoOperations = "NoOperations"
)

// Problem is one thing wrong with the inputs, located as precisely as known:
// the file (as given in Input.Files), the JSON pointer into it and the line.
type Problem struct {
	File    string `json:"file,omitempty"`
	Pointer string `json:"pointer,omitempty"`
	Line    int    `json:"line,omitempty"`
	Code    string `json:"code"`
	Reason  string `json:"reason"`
}

// Error renders "file: pointer (line N): reason", leaving out what is unknown.
func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(": ")
	}
	if p.Pointer != "" {
		b.WriteString(p.Pointer)
		if p.Line > 0 {
			b.WriteString(" (line ")
			b.WriteString(strconv.Itoa(p.Line))
			b.WriteString(")")
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

// Problems is every problem found in one compile; it is the error Compile
// returns, so a caller gets all of them at once rather than the first.
type Problems []Problem

func (ps Problems) Error() string {
	switch len(ps) {
	case 0:
		return "no problems"
	case 1:
		return ps[0].Error()
	}
	lines := make([]string, 0, len(ps)+1)
	lines = append(lines, fmt.Sprintf("%d problems:", len(ps)))
	for _, p := range ps {
		lines = append(lines, "  "+p.Error())
	}
	return strings.Join(lines, "\n")
}

// Codes returns the distinct codes, sorted.
func (ps Problems) Codes() []string {
	set := map[string]bool{}
	for _, p := range ps {
		set[p.Code] = true
	}
	codes := make([]string, 0, len(set))
	for c := range set {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	return codes
}

// Has reports whether any problem carries code.
func (ps Problems) Has(code string) bool {
	for _, p := range ps {
		if p.Code == code {
			return true
		}
	}
	return false
}

// sortProblems orders problems by file, then pointer, then code, so that the
// same inputs always report the same list.
func sortProblems(ps []Problem, fileOrder map[string]int) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if fa, fb := fileOrder[a.File], fileOrder[b.File]; fa != fb {
			return fa < fb
		}
		if a.Pointer != b.Pointer {
			return a.Pointer < b.Pointer
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		return a.Reason < b.Reason
	})
}

// pointer builds a JSON pointer (RFC 6901) from unescaped tokens.
func pointer(tokens ...string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapeToken(t))
	}
	return b.String()
}

func escapeToken(t string) string {
	if !strings.ContainsAny(t, "~/") {
		return t
	}
	t = strings.ReplaceAll(t, "~", "~0")
	return strings.ReplaceAll(t, "/", "~1")
}

func unescapeToken(t string) string {
	if !strings.Contains(t, "~") {
		return t
	}
	t = strings.ReplaceAll(t, "~1", "/")
	return strings.ReplaceAll(t, "~0", "~")
}

// splitPointer returns the unescaped tokens of a JSON pointer ("" is the root).
func splitPointer(p string) []string {
	if p == "" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, t := range parts {
		parts[i] = unescapeToken(t)
	}
	return parts
}
