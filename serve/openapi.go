package serve

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPISpec is the OpenAPI 3 description of every route; TestOpenAPICoversRoutes keeps it
// in step with the router.
//
//go:embed openapi.json
var openAPISpec string

// openAPI answers GET /api/openapi.json.
func (s *Server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", []byte(openAPISpec))
}
