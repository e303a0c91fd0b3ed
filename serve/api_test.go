package serve_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
	"github.com/t5zoo/t5zoo/serve/api"
)

// engine loads a golden model directly, for comparing the server's answers with the
// engine's.
func engine(t *testing.T, dir string) (*infer.Model, *tokenizer.Tokenizer) {
	t.Helper()
	m, err := infer.Load(t.Context(), dir, infer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	tok, err := tokenizer.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

var goldenTexts = []string{
	"translate English to German: The house is wonderful.",
	"summarize: Permission is hereby granted, free of charge, to any person obtaining a copy of this software.",
	"cola sentence: The book was by John read.",
}

// TestGenerateMatchesEngine sends every decoding strategy through POST /api/generate and
// checks the answers against the engine called directly on the same tokens.
func TestGenerateMatchesEngine(t *testing.T) {
	ts := newTestServer(t, nil)
	m, tok := engine(t, goldenRelu)
	var ids [][]int
	for _, s := range goldenTexts {
		x, err := tok.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, x)
	}
	lp := 0.8
	for _, tc := range []struct {
		name string
		req  api.GenerateRequest
		opts infer.GenerateOptions
		in   [][]int
	}{
		{"greedy one text", api.GenerateRequest{Input: goldenTexts[0], GenerateOptions: api.GenerateOptions{MaxNewTokens: 12}},
			infer.GenerateOptions{MaxNewTokens: 12}, ids[:1]},
		{"greedy batch", api.GenerateRequest{Inputs: goldenTexts, GenerateOptions: api.GenerateOptions{MaxNewTokens: 10, TopLogprobs: 3}},
			infer.GenerateOptions{MaxNewTokens: 10, TopLogprobs: 3}, ids},
		{"ids", api.GenerateRequest{InputIDs: ids[1:], GenerateOptions: api.GenerateOptions{MaxNewTokens: 8}},
			infer.GenerateOptions{MaxNewTokens: 8}, ids[1:]},
		{"beams", api.GenerateRequest{Inputs: goldenTexts[:2], GenerateOptions: api.GenerateOptions{MaxNewTokens: 9, NumBeams: 3, NumReturnSequences: 2, LengthPenalty: &lp}},
			infer.GenerateOptions{MaxNewTokens: 9, NumBeams: 3, NumReturnSequences: 2, LengthPenalty: &lp}, ids[:2]},
		{"sampling", api.GenerateRequest{Input: goldenTexts[2], GenerateOptions: api.GenerateOptions{MaxNewTokens: 7, DoSample: true, TopK: 30, Seed: 11, NumReturnSequences: 3}},
			infer.GenerateOptions{MaxNewTokens: 7, Sample: true, TopK: 30, Seed: 11, NumReturnSequences: 3}, ids[2:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Model = reluRef
			var got api.GenerateResponse
			if err := ts.Client.Generate(t.Context(), &tc.req, func(r api.GenerateResponse) error { got = r; return nil }); err != nil {
				t.Fatal(err)
			}
			want, err := m.Generate(t.Context(), tc.in, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Done || got.Model != reluRef || len(got.Results) != len(want) {
				t.Fatalf("answer %+v", got)
			}
			out := 0
			for i, w := range want {
				for j, h := range w.Hypotheses {
					g := got.Results[i].Hypotheses[j]
					text, _ := tok.Decode(h.IDs, true)
					if !slices.Equal(g.IDs, h.IDs[1:]) || !slices.Equal(g.TokenLogprobs, h.TokenLogprobs) || g.Score != h.Score || g.Text != text {
						t.Errorf("input %d hyp %d: server %+v, engine %+v (%q)", i, j, g, h, text)
					}
					if (g.FinishReason == "stop") != (h.IDs[len(h.IDs)-1] == 1) {
						t.Errorf("input %d hyp %d: finish_reason %q for %v", i, j, g.FinishReason, g.IDs)
					}
					if tc.opts.TopLogprobs > 0 && (len(g.TopLogprobs) != len(g.IDs) || g.TopLogprobs[0][0].ID != g.IDs[0]) {
						t.Errorf("input %d: top_logprobs %v", i, g.TopLogprobs)
					}
					out += len(g.IDs)
				}
			}
			if got.Usage == nil || got.Usage.InputTokens != lenAll(tc.in) || got.Usage.OutputTokens != out {
				t.Errorf("usage %+v, want %d in, %d out", got.Usage, lenAll(tc.in), out)
			}
		})
	}
}

func lenAll(ids [][]int) int {
	n := 0
	for _, x := range ids {
		n += len(x)
	}
	return n
}

// TestGenerateStream checks the server-sent events of "stream": true: token events whose
// texts add up to each final text, then one done event equal to the unstreamed answer.
func TestGenerateStream(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tc := range []struct {
		name string
		opts api.GenerateOptions
	}{
		{"greedy", api.GenerateOptions{MaxNewTokens: 15}},
		{"sampling", api.GenerateOptions{MaxNewTokens: 15, DoSample: true, Seed: 3, NumReturnSequences: 2, TopLogprobs: 2}},
		{"beams (done event only)", api.GenerateOptions{MaxNewTokens: 6, NumBeams: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := api.GenerateRequest{Model: reluRef, Inputs: goldenTexts[:2], GenerateOptions: tc.opts}
			var plain api.GenerateResponse
			if err := ts.Client.Generate(t.Context(), &req, func(r api.GenerateResponse) error { plain = r; return nil }); err != nil {
				t.Fatal(err)
			}
			req.Stream = true
			body, _ := json.Marshal(req)
			status, hdr, raw := do(t, http.MethodPost, ts.URL+"/api/generate", string(body))
			if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("%d %s: %s", status, hdr.Get("Content-Type"), raw)
			}
			events := readSSE(t, raw)
			texts := map[[2]int]string{}
			ids := map[[2]int][]int{}
			for _, ev := range events[:len(events)-1] {
				var r api.GenerateResponse
				if ev.name != "token" || json.Unmarshal([]byte(ev.data), &r) != nil || r.Token == nil || r.Done {
					t.Fatalf("event %q %s", ev.name, ev.data)
				}
				k := [2]int{r.Token.Input, r.Token.Sequence}
				texts[k] += r.Token.Text
				ids[k] = append(ids[k], r.Token.ID)
			}
			last := events[len(events)-1]
			var done api.GenerateResponse
			if last.name != "done" || json.Unmarshal([]byte(last.data), &done) != nil {
				t.Fatalf("last event %q %s", last.name, last.data)
			}
			a, _ := json.Marshal(done)
			b, _ := json.Marshal(plain)
			if string(a) != string(b) {
				t.Errorf("done event differs from the plain answer:\n%s\n%s", a, b)
			}
			if tc.opts.NumBeams > 1 {
				if len(events) != 1 {
					t.Errorf("beam search streamed %d token events", len(events)-1)
				}
				return
			}
			for i, g := range done.Results {
				for j, h := range g.Hypotheses {
					k := [2]int{i, j}
					if texts[k] != h.Text || !slices.Equal(ids[k], h.IDs) {
						t.Errorf("input %d seq %d: streamed %q %v, final %q %v", i, j, texts[k], ids[k], h.Text, h.IDs)
					}
				}
			}
		})
	}
	// The Go client reads the same stream.
	var n int
	var final api.GenerateResponse
	err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: reluRef, Input: goldenTexts[0], Stream: true}, func(r api.GenerateResponse) error {
		n++
		final = r
		return nil
	})
	if err != nil || !final.Done || n < 2 {
		t.Errorf("client stream: %d events, last %+v, %v", n, final, err)
	}
}

// TestScoreAndEncode compares /api/score and /api/encode with the engine.
func TestScoreAndEncode(t *testing.T) {
	ts := newTestServer(t, nil)
	m, tok := engine(t, goldenGated)
	in, _ := tok.Encode(goldenTexts[2])
	targets := []string{"acceptable", "unacceptable"}
	var pairs []infer.ScorePair
	var reqPairs []api.ScorePair
	for _, tg := range targets {
		ids, _ := tok.Encode(tg)
		pairs = append(pairs, infer.ScorePair{Input: in, Target: ids})
		reqPairs = append(reqPairs, api.ScorePair{Input: goldenTexts[2], Target: tg})
	}
	reqPairs = append(reqPairs, api.ScorePair{InputIDs: in, TargetIDs: pairs[0].Target})
	pairs = append(pairs, pairs[0])
	got, err := ts.Client.Score(t.Context(), &api.ScoreRequest{Model: gatedRef, Pairs: reqPairs})
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.Score(t.Context(), pairs)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		g := got.Results[i]
		if g.SumLogprob != w.SumLogprob || !slices.Equal(g.TokenLogprobs, w.TokenLogprobs) || !slices.Equal(g.TargetIDs, pairs[i].Target) {
			t.Errorf("pair %d: server %+v, engine %+v", i, g, w)
		}
	}

	enc, err := ts.Client.Encode(t.Context(), &api.EncodeRequest{Model: gatedRef, Inputs: goldenTexts, Hidden: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids [][]int
	for _, s := range goldenTexts {
		x, _ := tok.Encode(s)
		ids = append(ids, x)
	}
	wantEnc, err := m.Encode(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range wantEnc {
		if !slices.Equal(enc.Embeddings[i], w.Mean) || len(enc.Hidden[i]) != len(ids[i]) || !slices.Equal(enc.Hidden[i][1], w.Hidden[64:128]) {
			t.Errorf("input %d: embeddings differ from the engine's", i)
		}
	}
	if enc.Usage.InputTokens != lenAll(ids) {
		t.Errorf("encode usage %+v", enc.Usage)
	}
}

// TestConcurrentGenerateBatches sends concurrent requests with different options: each
// gets the engine's answer for it alone, and the decoder steps were shared.
func TestConcurrentGenerateBatches(t *testing.T) {
	ts := newTestServer(t, nil)
	m, tok := engine(t, goldenRelu)
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			opts := api.GenerateOptions{MaxNewTokens: 20 + i, DoSample: i%3 == 1, Seed: uint64(i), NumBeams: map[bool]int{true: 2}[i%3 == 2]}
			text := goldenTexts[i%len(goldenTexts)]
			var got api.GenerateResponse
			err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: reluRef, Input: text, GenerateOptions: opts}, func(r api.GenerateResponse) error {
				got = r
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			ids, _ := tok.Encode(text)
			want, err := m.Generate(t.Context(), [][]int{ids}, infer.GenerateOptions{MaxNewTokens: opts.MaxNewTokens, Sample: opts.DoSample, Seed: opts.Seed, NumBeams: opts.NumBeams})
			if err != nil {
				t.Error(err)
				return
			}
			if !slices.Equal(got.Results[0].Hypotheses[0].IDs, want[0].Hypotheses[0].IDs[1:]) {
				t.Errorf("request %d: %v, engine %v", i, got.Results[0].Hypotheses[0].IDs, want[0].Hypotheses[0].IDs[1:])
			}
		})
	}
	wg.Wait()
	steps := metricValue(t, ts, "t5zoo_batch_rows_count", "model="+reluRef)
	rows := metricValue(t, ts, "t5zoo_batch_rows_sum", "model="+reluRef)
	if steps == 0 || rows/steps <= 1 {
		t.Errorf("%v decoder steps for %v rows: no batching across requests", steps, rows)
	}
}
