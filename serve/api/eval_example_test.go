package api_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// Evaluate a model on SST-2 as an eval job of a server (here started in-process, on a data
// folder of four rows of SST-2's dev set), following the job's events to its end. The
// golden checkpoint's random weights generate no label (predict mode's predictions are all
// invalid) and rank one label for every sentence.
func ExampleClient_Eval() {
	ctx := context.Background()
	home, err := os.MkdirTemp("", "t5zoo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)
	data := filepath.Join(home, "data")
	if err := os.MkdirAll(filepath.Join(data, "glue", "SST-2"), 0o755); err != nil {
		log.Fatal(err)
	}
	rows := "sentence\tlabel\nit 's a charming and often affecting journey . \t1\nunflinchingly bleak and desperate \t0\n" +
		"a sometimes tedious film . \t0\nthe acting , costumes , music , cinematography and sound are all astounding given the production 's austere locales . \t1\n"
	if err := os.WriteFile(filepath.Join(data, "glue", "SST-2", "dev.tsv"), []byte(rows), 0o644); err != nil {
		log.Fatal(err)
	}
	cache, err := zoo.OpenCache(filepath.Join(home, "home"))
	if err != nil {
		log.Fatal(err)
	}
	s, err := serve.New(serve.Config{Cache: cache, EvalData: data,
		Models: map[string]string{"golden": "../../testdata/golden/tiny-relu/checkpoint"}})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()

	c, err := api.NewClient(hs.URL, api.ClientOptions{})
	if err != nil {
		log.Fatal(err)
	}
	job, err := c.Eval(ctx, &api.EvalRequest{Models: []string{"golden"}, Tasks: []string{"glue/sst2"}, Modes: []string{"predict", "rank"}})
	if err != nil {
		log.Fatal(err)
	}
	err = c.EvalEvents(ctx, job.ID, func(e api.EvalEvent) error {
		if e.Type == "end" {
			fmt.Println(e.Job.Status)
			for _, cell := range e.Job.Cells {
				fmt.Printf("%s %s %s: %d examples, accuracy %.0f\n", cell.Model, cell.Task, cell.Mode, cell.Total, cell.Metrics["accuracy"])
			}
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.EvalResults(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range res.Averages {
		fmt.Printf("%s average (%s): %.0f over %v\n", a.Benchmark, a.Mode, *a.Value, a.Groups)
	}
	// Output:
	// done
	// golden glue/sst2 predict: 4 examples, accuracy 0
	// golden glue/sst2 rank: 4 examples, accuracy 50
	// glue average (predict): 0 over [SST-2]
	// glue average (rank): 50 over [SST-2]
}
