package data_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strings"

	"github.com/t5zoo/t5zoo/finetune/data"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
)

// A training file to batches, and a resume from a saved cursor.
func Example() {
	ctx := context.Background()
	file := `{"input": "sst2 sentence: a charming journey", "target": "positive"}
{"prompt": "sst2 sentence: labored gags", "completion": "negative"}
{"messages": [{"role": "user", "content": "sst2 sentence: utterly satisfied"}, {"role": "assistant", "content": "positive"}]}
`
	set, err := data.Read(ctx, strings.NewReader(file), "train.jsonl", data.FormatJSONL)
	if err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.Open("../../infer/tokenizer/testdata/tokenizer-t5/hf_tokenizer")
	if err != nil {
		log.Fatal(err)
	}
	exs, stats, err := data.Tokenize(ctx, tok, set, 8, 4)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d examples, %d input tokens, %d inputs truncated\n", stats.Examples, stats.InputTokens, stats.TruncatedInputs)
	fmt.Println(exs[1].Target)

	b, err := data.NewBatcher(exs, data.BatchConfig{Batch: 2})
	if err != nil {
		log.Fatal(err)
	}
	b.Next()
	saved, _ := json.Marshal(b.Cursor())
	fmt.Println(string(saved))

	resumed, _ := data.NewBatcher(exs, data.BatchConfig{Batch: 2})
	var c data.Cursor
	if err := json.Unmarshal(saved, &c); err != nil {
		log.Fatal(err)
	}
	if err := resumed.Seek(c); err != nil {
		log.Fatal(err)
	}
	batch, epoch := resumed.Next()
	fmt.Println(len(batch), "example in the rest of epoch", epoch)
	// Output:
	// 3 examples, 24 input tokens, 3 inputs truncated
	// [2841 1]
	// {"epoch":0,"batch":1,"fingerprint":"1b914d7038b31217"}
	// 1 example in the rest of epoch 0
}
