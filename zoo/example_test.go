package zoo_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/t5zoo/t5zoo/zoo"
)

// Push a model directory to a registry, pull it into a cache, and resolve its name to the
// directory that the engine loads.
func Example() {
	ctx := context.Background()
	home, err := os.MkdirTemp("", "t5zoo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)

	cache, err := zoo.OpenCache(home) // $T5ZOO_HOME
	if err != nil {
		log.Fatal(err)
	}
	registry := cache.Registry() // or zoo.NewS3Store(zoo.S3Options{...})

	ref, err := zoo.ParseRef("google/t5-efficient-tiny-nl2:golden")
	if err != nil {
		log.Fatal(err)
	}
	pushed, err := zoo.Push(ctx, registry, "../testdata/golden/tiny-relu/checkpoint", ref, zoo.PushOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ref, len(pushed.Manifest.Files), "files,", pushed.Manifest.Size(), "bytes")

	dir, err := cache.Resolve(ctx, registry, "tiny-nl2:golden", zoo.PullOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(dir == cache.ModelDir(ref))
	// Output:
	// t5-efficient-tiny-nl2:golden 6 files, 1759637 bytes
	// true
}
