// Package catalog describes T5 shapes: the Shape type (every hyper-parameter of a T5 model,
// keyed as in Hugging Face's T5Config), the name grammar of the Scale Efficiently checkpoints
// (t5-efficient-<size>[-<knob><n>]...), the published shapes of catalog.json with lookup and
// filtering, and the cost model (parameters, FLOPs, weight and KV-cache bytes).
//
// It is the leaf of the module: it imports nothing else from t5zoo, and every other package
// names shapes through it.
package catalog

//go:generate go run ./internal/gencatalog -facts facts/t5_efficient_checkpoints.json -out ../catalog.json

// FactsSource names the source data of catalog.json, recorded in the file itself.
const FactsSource = "catalog/facts/t5_efficient_checkpoints.json (confirmed and inferred shapes; see catalog/facts/README.md)"
