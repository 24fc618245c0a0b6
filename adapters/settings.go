package adapters

import (
	"io"
	"net/url"
	"strings"
	"text/template"
	"time"
)

// Report is how a kind's Validate reports a problem: the field relative to
// the block, a message (with "{value}" where config may show the value),
// and fields whose line to use when field was not written.
type Report = func(field, message string, near ...string)

// ValidateBaseURL checks an absolute http(s) base URL (api_url and the
// like): no credentials, no query, no fragment. The value is shown only
// when it cannot hold credentials.
func ValidateBaseURL(field, raw string, report Report) {
	u, err := url.Parse(raw)
	switch {
	case err == nil && u.User != nil:
		report(field, "must not contain a user name or password")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" || u.Hostname() == "":
		if strings.Contains(raw, "@") {
			report(field, "must be an absolute http:// or https:// URL")
		} else {
			report(field, "{value} is not an absolute http:// or https:// URL")
		}
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		report(field, "must not have a query (?) or fragment (#)")
	}
}

// ParseJoinTemplate parses a join_url_template and runs it once on sample,
// a zero value of the data the kind executes it with, so a template that
// names a field the kind does not have fails at start-up, not at a click.
func ParseJoinTemplate(text string, sample any) (*template.Template, error) {
	t, err := template.New("join_url_template").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	if err := t.Execute(io.Discard, sample); err != nil {
		return nil, err
	}
	return t, nil
}

// TokenTTL is how long a credential lives: the shorter of the gateway's
// (the request's) and the block's token_ttl, one hour when neither is set.
func TokenTTL(req, block time.Duration) time.Duration {
	switch {
	case req > 0 && block > 0:
		return min(req, block)
	case req > 0:
		return req
	case block > 0:
		return block
	}
	return time.Hour
}
