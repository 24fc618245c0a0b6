// Package templates renders what callgate shows people: today the join
// pages (call ended, link expired, …); the chat cards join them here. The
// files are embedded, and a directory named in the YAML (templates.dir) can
// override any of them by name, so admins restyle or translate without a
// rebuild.
package templates

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

//go:embed files
var embedded embed.FS

// DefaultLang is used when a request names no language we have.
const DefaultLang = "en"

// Set is the parsed templates and strings.
type Set struct {
	page    *template.Template
	strings map[string]map[string]string // lang → key → text
}

// Load parses the embedded files, each overridden by a file of the same name
// in dir when dir is not empty. A broken override is an error at start-up,
// not at the first request.
func Load(dir string) (*Set, error) {
	files, err := fs.Sub(embedded, "files")
	if err != nil {
		return nil, err
	}
	read := func(name string) ([]byte, error) {
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil {
				return b, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("templates: %w", err)
			}
		}
		return fs.ReadFile(files, name)
	}
	page, err := read("page.html")
	if err != nil {
		return nil, err
	}
	s := &Set{strings: map[string]map[string]string{}}
	if s.page, err = template.New("page.html").Parse(string(page)); err != nil {
		return nil, fmt.Errorf("templates: page.html: %w", err)
	}
	langs, err := languages(files, dir)
	if err != nil {
		return nil, err
	}
	for _, lang := range langs {
		name := "strings." + lang + ".json"
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("templates: %s: %w", name, err)
		}
		s.strings[lang] = m
	}
	if _, ok := s.strings[DefaultLang]; !ok {
		return nil, fmt.Errorf("templates: strings.%s.json is missing", DefaultLang)
	}
	return s, nil
}

// languages lists the languages with a strings file, embedded or in dir.
func languages(files fs.FS, dir string) ([]string, error) {
	var langs []string
	add := func(name string) {
		if l, ok := strings.CutPrefix(name, "strings."); ok {
			if l, ok := strings.CutSuffix(l, ".json"); ok && !slices.Contains(langs, l) {
				langs = append(langs, l)
			}
		}
	}
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		add(e.Name())
	}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		for _, e := range entries {
			add(e.Name())
		}
	}
	slices.Sort(langs)
	return langs, nil
}

// Text returns the string for key in lang, falling back to English, then
// to the key itself so a missing translation shows, not breaks.
func (s *Set) Text(lang, key string) string {
	if t, ok := s.strings[lang][key]; ok {
		return t
	}
	if t, ok := s.strings[DefaultLang][key]; ok {
		return t
	}
	return key
}

// Language picks the best language we have from an Accept-Language header.
func (s *Set) Language(acceptLanguage string) string {
	for _, part := range strings.Split(acceptLanguage, ",") {
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if _, ok := s.strings[base]; ok {
			return base
		}
	}
	return DefaultLang
}

// Page is one join page: a message keyed by Kind ("ended", "expired", …).
type Page struct {
	Lang      string
	Kind      string
	CallTitle string
}

// RenderPage returns the HTML for p.
func (s *Set) RenderPage(p Page) ([]byte, error) {
	var buf bytes.Buffer
	err := s.page.Execute(&buf, map[string]string{
		"Lang":      p.Lang,
		"Title":     s.Text(p.Lang, p.Kind+".title"),
		"Message":   s.Text(p.Lang, p.Kind+".message"),
		"CallTitle": p.CallTitle,
	})
	if err != nil {
		return nil, fmt.Errorf("templates: render %s page: %w", p.Kind, err)
	}
	return buf.Bytes(), nil
}
