package api_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"

	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// Generate with a server (here started in-process on a model directory), first in one
// answer, then streaming tokens as they are decided.
func ExampleClient_Generate() {
	ctx := context.Background()
	home, err := os.MkdirTemp("", "t5zoo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)
	cache, err := zoo.OpenCache(home)
	if err != nil {
		log.Fatal(err)
	}
	s, err := serve.New(serve.Config{Cache: cache, Models: map[string]string{"golden": "../../testdata/golden/tiny-relu/checkpoint"}})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.Handler()) // or s.Serve(ctx, listener)
	defer hs.Close()

	c, err := api.NewClient(hs.URL, api.ClientOptions{})
	if err != nil {
		log.Fatal(err)
	}
	req := &api.GenerateRequest{
		Model:           "golden",
		Input:           "translate English to German: The house is wonderful.",
		GenerateOptions: api.GenerateOptions{MaxNewTokens: 8, NumBeams: 2},
	}
	err = c.Generate(ctx, req, func(r api.GenerateResponse) error {
		h := r.Results[0].Hypotheses[0]
		fmt.Printf("%q %v %s\n", h.Text, h.IDs, h.FinishReason)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	req.NumBeams, req.Stream = 0, true
	err = c.Generate(ctx, req, func(r api.GenerateResponse) error {
		if r.Token != nil {
			fmt.Printf("token %d %q\n", r.Token.ID, r.Token.Text)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// "given then then then then then then then" [375 503 503 503 503 503 503 503] length
	// token 375 "given"
	// token 1 ""
}
