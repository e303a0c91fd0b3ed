package task_test

import (
	"fmt"

	"github.com/t5zoo/t5zoo/evaluate/task"
)

func ExampleLookup() {
	t, err := task.Lookup("sst2")
	if err != nil {
		panic(err)
	}
	fmt.Println(t.Name(), t.Version(), t.Files())
	_, err = task.Lookup("glue/sst")
	fmt.Println(err)
	// Output:
	// glue/sst2 v002.1 [glue/SST-2/dev.tsv]
	// task: unknown task "glue/sst"; did you mean glue/sst2?
}

func ExampleParseSpec() {
	spec := []byte(`name: reviews/sentiment
data: reviews.jsonl
input: "review: {text}"
target: label
choices: [negative, positive]
metrics: [accuracy, f1]
`)
	t, err := task.ParseSpec(spec, "/data/specs")
	if err != nil {
		panic(err)
	}
	fmt.Println(t.Name(), t.Files(), t.Rankable(), t.Modes())
	s, err := t.Evaluate([]task.Example{{Target: "positive"}, {Target: "negative"}}, []string{"positive", "maybe"})
	if err != nil {
		panic(err)
	}
	fmt.Printf("accuracy %.0f, f1 %.0f, invalid %d\n", s.Metrics["accuracy"], s.Metrics["f1"], s.Invalid)
	// Output:
	// reviews/sentiment [/data/specs/reviews.jsonl] true [predict rank]
	// accuracy 50, f1 67, invalid 1
}
