package api

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

//go:embed openapi.yaml
var openAPIDocument []byte

// OpenAPIDocument is the OpenAPI 3 description of every route.
func OpenAPIDocument() []byte { return openAPIDocument }

func serveOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", openAPIDocument)
}
