package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/httpserver"
)

// decodeJSON reads the body into v. An empty body leaves v as it is (every
// field of these requests is optional somewhere); any other body must be one
// JSON object (null is not). A key given twice in one object is refused at
// any depth, since parsers disagree on which one wins. strict rejects
// unknown fields and matches field names exactly ("ID" is not "id": Go's
// decoder alone would accept it), which catches typos in the v1 API;
// Stream's compatible endpoints are lenient about unknown fields because
// its SDKs send fields callgate does not use.
func decodeJSON(c echo.Context, v any, strict bool) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		if httpserver.IsTooLarge(err) {
			var mbe *http.MaxBytesError
			errors.As(err, &mbe)
			return httpserver.TooLarge(mbe.Limit)
		}
		return httpserver.NewError(http.StatusBadRequest, "bad_request", "could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != echo.MIMEApplicationJSON {
		return httpserver.NewError(http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json, got %q", ct)
	}
	if err := checkJSON(body, reflect.TypeOf(v), strict); err != nil {
		return httpserver.NewError(http.StatusBadRequest, "malformed_json", "%s", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return httpserver.NewError(http.StatusBadRequest, "malformed_json", "%s", describeJSONError(err))
	}
	if dec.More() {
		return httpserver.NewError(http.StatusBadRequest, "malformed_json", "unexpected data after the JSON object")
	}
	return nil
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be %s, got JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
		}
		return fmt.Sprintf("the body must be a JSON object, got JSON %s", typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: the body ends too early"
	}
	// DisallowUnknownFields reports `json: unknown field "x"`.
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "a number"
}

// checkJSON walks body alongside the Go type it will be decoded into: the
// top level must be an object, no object may repeat a key, and, when
// strict, every key of an object decoded into a struct must be one of the
// struct's JSON names exactly. Syntax errors are left to the decoder, which
// describes them better.
func checkJSON(body []byte, t reflect.Type, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("the body must be a JSON object, got JSON %s", jsonTokenKind(tok))
	}
	w := jsonWalker{dec: dec, strict: strict}
	if err := w.object(t, ""); err != nil && !w.syntax {
		return err
	}
	return nil
}

type jsonWalker struct {
	dec    *json.Decoder
	strict bool
	syntax bool // the body is not valid JSON: the decoder reports that
}

func (w *jsonWalker) token() (json.Token, error) {
	tok, err := w.dec.Token()
	if err != nil {
		w.syntax = true
	}
	return tok, err
}

// value walks one value whose first token is tok.
func (w *jsonWalker) value(tok json.Token, t reflect.Type, path string) error {
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	t = deref(t)
	switch d {
	case '{':
		return w.object(t, path)
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; ; i++ {
			tok, err := w.token()
			if err != nil {
				return err
			}
			if d, ok := tok.(json.Delim); ok && d == ']' {
				return nil
			}
			if err := w.value(tok, elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	return nil
}

// object walks the members of an object whose '{' has been read.
func (w *jsonWalker) object(t reflect.Type, path string) error {
	t = deref(t)
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = jsonFields(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	seen := map[string]bool{}
	for {
		tok, err := w.token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return nil
		}
		key, _ := tok.(string)
		name := key
		if path != "" {
			name = path + "." + key
		}
		if seen[key] {
			return fmt.Errorf("duplicate key %q", name)
		}
		seen[key] = true
		ft := elem
		if fields != nil {
			var known bool
			ft, known = fields[key]
			if !known && w.strict {
				for f := range fields {
					if strings.EqualFold(f, key) {
						return fmt.Errorf("unknown field %q (field names are case-sensitive: did you mean %q?)", name, f)
					}
				}
				return fmt.Errorf("unknown field %q", name)
			}
		}
		tok, err = w.token()
		if err != nil {
			return err
		}
		if err := w.value(tok, ft, name); err != nil {
			return err
		}
	}
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// jsonFields maps a struct's JSON names to their types, as encoding/json
// names them (tags, untagged exported fields, embedded structs flattened).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && deref(f.Type).Kind() == reflect.Struct {
			for k, v := range jsonFields(deref(f.Type)) {
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func jsonTokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		if v == '[' {
			return "array"
		}
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	}
	return "value"
}
