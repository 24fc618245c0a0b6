package api_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/callgate/callgate/api"
)

// TestOpenAPIMatchesRoutes keeps the document honest: every route the
// gateway serves is documented, and every documented operation is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	g := newGateway(t, gatewayOptions{guestJoin: true})
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPIDocument(), &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	methods := []string{"get", "post", "put", "patch", "delete"}
	var documented []string
	for path, item := range doc.Paths {
		for m := range item {
			if slices.Contains(methods, m) {
				documented = append(documented, strings.ToUpper(m)+" "+path)
			}
		}
	}
	param := regexp.MustCompile(`:([a-z_]+)`)
	var served []string
	for _, r := range g.echo.Routes() {
		if !slices.Contains(methods, strings.ToLower(r.Method)) {
			continue
		}
		served = append(served, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}
	slices.Sort(documented)
	slices.Sort(served)
	documented, served = slices.Compact(documented), slices.Compact(served)
	for _, s := range served {
		if !slices.Contains(documented, s) {
			t.Errorf("route %s is served but not in openapi.yaml", s)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("openapi.yaml documents %s, which is not served", d)
		}
	}
	if len(served) < 10 {
		t.Fatalf("only %d routes found; the comparison is not meaningful", len(served))
	}
	res := g.get("/openapi.yaml", "")
	if res.status != http.StatusOK || string(res.body) != string(api.OpenAPIDocument()) {
		t.Fatalf("GET /openapi.yaml: %d", res.status)
	}
}
