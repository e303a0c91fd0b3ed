package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/t5zoo/t5zoo/infer/tokenizer"
)

func ExampleTokenizer() {
	tok, err := tokenizer.Open("testdata/tokenizer-t5/hf_tokenizer")
	if err != nil {
		log.Fatal(err)
	}
	ids, pieces, err := tok.EncodePieces("The <extra_id_0> walks in <extra_id_1> park")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ids)
	fmt.Printf("%q\n", pieces)
	for _, skip := range []bool{false, true} {
		text, err := tok.Decode(ids, skip)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q\n", text)
	}
	// Output:
	// [37 32099 10681 16 32098 2447 1]
	// ["▁The" "<extra_id_0>" "▁walks" "▁in" "<extra_id_1>" "▁park" "</s>"]
	// "The<extra_id_0> walks in<extra_id_1> park</s>"
	// "The walks in park"
}

func ExampleSentencePiece_Encode() {
	tok, err := tokenizer.Open("testdata/tokenizer-t5/hf_tokenizer/spiece.model")
	if err != nil {
		log.Fatal(err)
	}
	sp := tok.SentencePiece()
	ids, pieces, err := sp.Encode("ｈｅｌｌｏ naïve")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ids)
	fmt.Printf("%q\n", pieces)
	text, err := sp.Decode(ids)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", text)
	// Output:
	// [21820 3 29 9 2 162]
	// ["▁hello" "▁" "n" "a" "ï" "ve"]
	// "hello na ⁇ ve"
}
