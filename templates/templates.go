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

	"github.com/callgate/callgate/calls"
)

//go:embed files
var embedded embed.FS

// DefaultLang is used when a request names no language we have.
const DefaultLang = "en"

// BuiltinLangs are the languages the embedded card words come in
// (files/strings.<lang>.json): what a chat platform's default_locale may
// name, checked when the configuration is read.
var BuiltinLangs = []string{"en", "fr", "de", "es"}

// IsBuiltinLang reports whether lang is one of BuiltinLangs.
func IsBuiltinLang(lang string) bool { return slices.Contains(BuiltinLangs, lang) }

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
	// CallID is set when the visitor may know the call: the page's script
	// then remembers or forgets it in sessionStorage.
	CallID string
	// JoinURL, when set, makes this the page that checks the browser and
	// then sends the visitor on to the provider; Type picks what it asks
	// permission for (audio: the microphone only).
	JoinURL string
	Type    calls.Type
	// Summary and People describe a call that is over ("Call ended · 14
	// min · 5 people"), for those allowed to know.
	Summary string
	People  string
	// ErrorID shows one of ErrorIDs from the start.
	ErrorID string
	// Nonce lets the page load its script under the Content-Security-Policy
	// (script-src 'nonce-…'); empty, the page has no script.
	Nonce string
}

// ErrorIDs are the call screen's error ids, as the LivePerson call screen
// names them; the page shows the one that applies in the visitor's language.
var ErrorIDs = []string{"UNABLE_TO_CONNECT", "BROWSER_NOT_SUPPORTED", "NO_CAMERA_ACCESS", "AGENT_DISCONNECTED"}

type pageError struct{ ID, Text string }

// RenderPage returns the HTML for p.
func (s *Set) RenderPage(p Page) ([]byte, error) {
	var errs []pageError
	if p.CallID != "" || p.ErrorID != "" {
		for _, id := range ErrorIDs {
			errs = append(errs, pageError{ID: id, Text: s.Text(p.Lang, "error."+id)})
		}
	}
	var buf bytes.Buffer
	err := s.page.Execute(&buf, map[string]any{
		"Lang":      p.Lang,
		"Kind":      p.Kind,
		"Title":     s.Text(p.Lang, p.Kind+".title"),
		"Message":   s.Text(p.Lang, p.Kind+".message"),
		"CallTitle": p.CallTitle,
		"CallID":    p.CallID,
		"JoinURL":   p.JoinURL,
		"Type":      string(p.Type),
		"Summary":   p.Summary,
		"People":    p.People,
		"ErrorID":   p.ErrorID,
		"Errors":    errs,
		"Nonce":     p.Nonce,
		"Checking":  s.Text(p.Lang, "join.checking"),
		"NoScript":  s.Text(p.Lang, "join.noscript"),
		"Join":      s.Text(p.Lang, "card.action.join"),
	})
	if err != nil {
		return nil, fmt.Errorf("templates: render %s page: %w", p.Kind, err)
	}
	return buf.Bytes(), nil
}

// Asset returns an embedded static file (files/assets/name) for the pages:
// their script and the admin page's. They are part of the binary, not
// overridable, so a Content-Security-Policy can trust them.
func Asset(name string) ([]byte, bool) {
	if strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return nil, false
	}
	b, err := embedded.ReadFile("files/assets/" + name)
	return b, err == nil
}
