package gguf_test

import (
	"bytes"
	"fmt"

	"github.com/t5zoo/t5zoo/convert/gguf"
)

func ExampleWriter() {
	var w gguf.Writer
	w.AddKV("general.architecture", gguf.String("demo"))
	w.AddKV("demo.block_count", gguf.Uint32(2))
	w.AddKV("demo.labels", gguf.Array([]string{"a", "b"}))
	data, _ := gguf.EncodeFloat32s(nil, gguf.TypeF16, []float32{1, 2, 3, 4, 5, 6})
	w.AddTensor("blk.0.weight", gguf.TypeF16, []int{2, 3}, data) // PyTorch order: 2 rows of 3

	var buf bytes.Buffer
	w.WriteTo(&buf)
	f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		panic(err)
	}
	for _, kv := range f.KVs {
		fmt.Println(kv.Key, kv.Value)
	}
	t, _ := f.Tensor("blk.0.weight")
	x, _ := f.Float32s("blk.0.weight")
	fmt.Println(t.Name, t.Type, "ne", t.Dims, "shape", t.Shape(), x)
	// Output:
	// general.architecture "demo"
	// demo.block_count 2
	// demo.labels [2 × string]
	// blk.0.weight F16 ne [3 2] shape [2 3] [1 2 3 4 5 6]
}
