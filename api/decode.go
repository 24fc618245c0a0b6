package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/callgate/callgate/httpserver"
)

// decodeJSON reads the body into v. An empty body leaves v as it is (every
// field of these requests is optional somewhere). strict rejects unknown
// fields, which catches typos in the v1 API; Stream's compatible endpoints
// are lenient because its SDKs send fields callgate does not use.
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
