package hub_test

import (
	"context"
	"fmt"
	"os"

	"github.com/t5zoo/t5zoo/convert/hub"
	"github.com/t5zoo/t5zoo/convert/hub/hubtest"
)

// A T5 import downloads config.json, the PyTorch weights (model.safetensors in preference to
// pytorch_model.bin) and spiece.model, plus the tokenizer and generation configs when the
// repository has them; the TensorFlow and Flax weights stay on the Hub.
func ExampleClient_DownloadT5() {
	srv := hubtest.New(hubtest.Repo{ID: "google/t5-efficient-tiny", Files: map[string][]byte{
		"config.json":        []byte(`{"model_type": "t5"}`),
		"pytorch_model.bin":  make([]byte, 1000),
		"tf_model.h5":        make([]byte, 1000),
		"flax_model.msgpack": make([]byte, 1000),
		"spiece.model":       make([]byte, 100),
		"README.md":          []byte("# t5-efficient-tiny"),
	}})
	defer srv.Close()
	dir, err := os.MkdirTemp("", "hub-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	c := &hub.Client{Endpoint: srv.URL} // cmd sets Endpoint from HF_ENDPOINT, Token from HF_TOKEN
	snap, err := c.DownloadT5(context.Background(), "google/t5-efficient-tiny", "main", dir, hub.SnapshotOptions{})
	if err != nil {
		panic(err)
	}
	for _, f := range snap.Files {
		fmt.Println(f.File, f.Size)
	}
	// Output:
	// config.json 20
	// pytorch_model.bin 1000
	// spiece.model 100
}
