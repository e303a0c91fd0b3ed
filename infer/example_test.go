package infer_test

import (
	"context"
	"fmt"
	"log"

	"github.com/t5zoo/t5zoo/infer"
)

// exampleModel is the golden tiny-relu checkpoint (random weights; see testdata/README.md).
// The outputs below are its Hugging Face transformers v4.30.2 reference outputs for the
// input "Yes", which its tokenizer makes [7 450 111 1].
const exampleModel = "../testdata/golden/tiny-relu/checkpoint"

func Example() {
	ctx := context.Background()
	m, err := infer.Load(ctx, exampleModel, infer.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	gens, err := m.Generate(ctx, [][]int{{7, 450, 111, 1}}, infer.GenerateOptions{MaxNewTokens: 5})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(gens[0].Hypotheses[0].IDs)
	// Output: [0 1810 1192 1303 1838 843]
}

func ExampleModel_Score() {
	ctx := context.Background()
	m, err := infer.Load(ctx, exampleModel, infer.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	res, err := m.Score(ctx, []infer.ScorePair{{Input: []int{7, 450, 111, 1}, Target: []int{1}}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sum %.2f, token log-probs %d\n", res[0].SumLogprob, len(res[0].TokenLogprobs))
	// Output: sum -5.52, token log-probs 1
}

// ExampleModel_Step drives the decoder by hand, as a batching server does: encode once,
// then step sequences (here two forks of one) together.
func ExampleModel_Step() {
	ctx := context.Background()
	m, err := infer.Load(ctx, exampleModel, infer.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	encs, err := m.RunEncoder(ctx, [][]int{{7, 450, 111, 1}})
	if err != nil {
		log.Fatal(err)
	}
	a := encs[0].NewSequence()
	start := m.Shape().DecoderStartTokenID
	logits, err := m.Step(ctx, []*infer.Sequence{a}, []int{start}, nil)
	if err != nil {
		log.Fatal(err)
	}
	b := a.Fork()
	V := m.Shape().VocabSize
	logits, err = m.Step(ctx, []*infer.Sequence{a, b}, []int{1810, 503}, logits)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(logits)/V, a.IDs(), b.IDs())
	// Output: 2 [0 1810] [0 503]
}
