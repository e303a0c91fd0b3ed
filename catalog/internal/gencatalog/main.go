// Command gencatalog writes catalog.json from the facts list (run by `go generate ./catalog`).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/t5zoo/t5zoo/catalog"
)

func main() {
	facts := flag.String("facts", "facts/t5_efficient_checkpoints.json", "the facts list")
	out := flag.String("out", "../catalog.json", "where to write catalog.json")
	flag.Parse()
	if err := run(*facts, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gencatalog:", err)
		os.Exit(1)
	}
}

func run(factsPath, outPath string) error {
	data, err := os.ReadFile(factsPath)
	if err != nil {
		return err
	}
	recs, err := catalog.ParseFacts(data)
	if err != nil {
		return err
	}
	entries, err := catalog.EntriesFromFacts(recs)
	if err != nil {
		return err
	}
	b, err := catalog.MarshalFile(entries, catalog.FactsSource)
	if err != nil {
		return err
	}
	return os.WriteFile(outPath, b, 0o644)
}
