// Package t5zoo holds what the binary embeds from the repository root: catalog.json, the
// published shapes. Everything else lives in the packages below it (see README.md).
package t5zoo

import _ "embed"

// catalogJSON is a string so that no caller can change the embedded bytes.
//
//go:embed catalog.json
var catalogJSON string

// CatalogJSON returns the contents of catalog.json as built into this binary.
func CatalogJSON() []byte { return []byte(catalogJSON) }
