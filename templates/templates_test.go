package templates

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEmbeddedPages(t *testing.T) {
	s, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	kinds := []string{"ended", "not_found", "expired", "invalid", "personal_only", "unavailable", "no_web", "rate_limited", "preparing"}
	for _, lang := range BuiltinLangs {
		for _, k := range kinds {
			if s.Text(lang, k+".title") == k+".title" || s.Text(lang, k+".message") == k+".message" {
				t.Errorf("%s: %s has no translation", lang, k)
			}
		}
	}
	html, err := s.RenderPage(Page{Lang: "fr", Kind: "ended", CallTitle: "<script>x</script>"})
	if err != nil {
		t.Fatal(err)
	}
	out := string(html)
	if !strings.Contains(out, "Cet appel est terminé") || !strings.Contains(out, `lang="fr"`) {
		t.Errorf("French ended page wrong:\n%s", out)
	}
	if strings.Contains(out, "<script>x</script>") || !strings.Contains(out, "&lt;script&gt;") {
		t.Error("call title was not escaped")
	}
}

func TestLanguage(t *testing.T) {
	s, _ := Load("")
	tests := map[string]string{
		"":                        "en",
		"fr-CA,fr;q=0.9,en;q=0.8": "fr",
		"de-DE,de;q=0.9":          "de",
		"pt-BR,es;q=0.5":          "es",
		"zh,ja;q=0.5":             "en",
		"EN-gb":                   "en",
	}
	for header, want := range tests {
		if got := s.Language(header); got != want {
			t.Errorf("Language(%q) = %q, want %q", header, got, want)
		}
	}
}

func TestOverrideDirectory(t *testing.T) {
	dir := t.TempDir()
	must := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	must("page.html", `<p>{{.Title}}|{{.Message}}</p>`)
	must("strings.de.json", `{"ended.title":"Anruf beendet"}`)
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := s.RenderPage(Page{Lang: s.Language("de"), Kind: "ended"})
	if got := string(html); got != "<p>Anruf beendet|The call is over. Start a new one from your chat.</p>" {
		t.Errorf("override page = %q (want German title, English fallback message)", got)
	}

	must("strings.en.json", `{not json`)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "strings.en.json") {
		t.Errorf("broken override: err = %v, want one naming strings.en.json", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing override directory was accepted")
	}
}

// TestBuiltinLangsHaveWords: every language adapters accept as a default
// has its embedded words, and every embedded word file is listed.
func TestBuiltinLangsHaveWords(t *testing.T) {
	files, err := fs.Glob(embedded, "files/strings.*.json")
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, f := range files {
		have = append(have, strings.TrimSuffix(strings.TrimPrefix(path.Base(f), "strings."), ".json"))
	}
	slices.Sort(have)
	want := slices.Sorted(slices.Values(BuiltinLangs))
	if !slices.Equal(have, want) {
		t.Fatalf("embedded word files %v, BuiltinLangs %v", have, want)
	}
}
