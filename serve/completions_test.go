package serve_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/safetensors"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
)

// t5Vocab is the real T5 tokenizer (32000 pieces, many of them accented letters), kept by
// the tokenizer's tests.
const t5Vocab = "../infer/tokenizer/testdata/tokenizer-t5/hf_tokenizer"

// utf8Model is a model served from a directory whose texts are made of two-byte letters
// only: its LM head has two non-zero rows, "ü" = v and "é" = -v, so every step picks one of
// them (never </s>).
const utf8Model = "utf8"

var (
	utf8DirOnce sync.Once
	utf8Dir     string
	utf8DirErr  error
)

func utf8ModelDir(t *testing.T) string {
	t.Helper()
	utf8DirOnce.Do(func() { utf8Dir, utf8DirErr = writeUTF8Model() })
	if utf8DirErr != nil {
		t.Fatal(utf8DirErr)
	}
	return utf8Dir
}

func writeUTF8Model() (string, error) {
	tok, err := tokenizer.Open(t5Vocab)
	if err != nil {
		return "", err
	}
	var letters []int
	for _, p := range []string{"ü", "é"} {
		id := tok.SentencePiece().PieceToID(p)
		if id == tok.UnkID() {
			return "", fmt.Errorf("the T5 vocabulary has no piece %q", p)
		}
		letters = append(letters, id)
	}
	dir, err := os.MkdirTemp("", "t5zoo-serve-utf8")
	if err != nil {
		return "", err
	}
	s := catalog.DefaultShape()
	s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers, s.NumDecoderLayers = 32, 64, 8, 4, 1, 1
	s.VocabSize = 32128
	s.TieWordEmbeddings = false
	rng := rand.New(rand.NewPCG(11, 12))
	var w safetensors.Writer
	for _, tn := range s.Tensors() {
		v := make([]float32, tn.Elements())
		switch {
		case strings.HasSuffix(tn.Name, "layer_norm.weight"):
			for i := range v {
				v[i] = 1
			}
		case tn.Name == "lm_head.weight":
			for j := range s.DModel {
				x := float32(rng.NormFloat64())
				v[letters[0]*s.DModel+j], v[letters[1]*s.DModel+j] = x, -x
			}
		default:
			std := 1 / math.Sqrt(float64(s.DModel))
			if strings.HasSuffix(tn.Name, "shared.weight") {
				std = 1
			}
			for i := range v {
				v[i] = float32(rng.NormFloat64() * std)
			}
		}
		if err := w.AddFloat32(tn.Name, tn.Shape, v); err != nil {
			return "", err
		}
	}
	if err := w.WriteFile(filepath.Join(dir, "model.safetensors")); err != nil {
		return "", err
	}
	cfg, err := json.Marshal(s.HFConfig())
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		return "", err
	}
	for _, f := range []string{"spiece.model", "tokenizer_config.json", "special_tokens_map.json"} {
		b, err := os.ReadFile(filepath.Join(t5Vocab, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, f), b, 0o644)
		}
		if err != nil {
			return "", err
		}
	}
	return dir, nil
}

// withUTF8Model adds utf8Model to a test server's models.
func withUTF8Model(t *testing.T) func(*serve.Config) {
	dir := utf8ModelDir(t)
	return func(c *serve.Config) { c.Models[utf8Model] = dir }
}

// rawChunk is a completion chunk decoded without the api types, top_logprobs kept raw.
type rawChunk struct {
	Choices []struct {
		Text         string  `json:"text"`
		Index        int     `json:"index"`
		FinishReason *string `json:"finish_reason"`
		Logprobs     *struct {
			Tokens        []string          `json:"tokens"`
			TokenLogprobs []*float64        `json:"token_logprobs"`
			TopLogprobs   []json.RawMessage `json:"top_logprobs"`
			TextOffset    []int             `json:"text_offset"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage *api.CompletionUsage `json:"usage"`
}

// postCompletion posts body to /v1/completions and returns the answer (stream false) or the
// chunks (stream true), decoded as rawChunks.
func postCompletion(t *testing.T, ts *testServer, body string) []rawChunk {
	t.Helper()
	status, _, raw := do(t, http.MethodPost, ts.URL+"/v1/completions", body)
	if status != http.StatusOK {
		t.Fatalf("%s: %d %s", body, status, raw)
	}
	if !bytes.HasPrefix(raw, []byte("data: ")) {
		var c rawChunk
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return []rawChunk{c}
	}
	var out []rawChunk
	for _, ev := range readSSE(t, raw) {
		if ev.data == "[DONE]" {
			return out
		}
		var c rawChunk
		if err := json.Unmarshal([]byte(ev.data), &c); err != nil {
			t.Fatalf("chunk %s: %v", ev.data, err)
		}
		out = append(out, c)
	}
	t.Fatalf("no [DONE] in %s", raw)
	return nil
}

// TestStreamKeepsRunesWhole streams completions of two-byte letters with a stop string
// that never occurs: the tail held back for it must end on a rune boundary, so that every
// chunk is valid UTF-8 and the chunks add up to the unstreamed text.
func TestStreamKeepsRunesWhole(t *testing.T) {
	ts := newTestServer(t, withUTF8Model(t))
	for _, stop := range []string{`"zzzz"`, `["zz","zzz"]`, `"üüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüü"`} {
		t.Run(stop, func(t *testing.T) {
			body := `{"model":"` + utf8Model + `","prompt":"hello","max_tokens":24,"temperature":0,"stop":` + stop + `%s}`
			whole := postCompletion(t, ts, fmt.Sprintf(body, ""))[0].Choices[0]
			if utf8.RuneCountInString(whole.Text) < 10 || strings.Trim(whole.Text, "üé") != "" {
				t.Fatalf("text %q: want two-byte letters only", whole.Text)
			}
			var text string
			for _, c := range postCompletion(t, ts, fmt.Sprintf(body, `,"stream":true`)) {
				for _, ch := range c.Choices {
					if strings.ContainsRune(ch.Text, utf8.RuneError) {
						t.Errorf("chunk %q holds U+FFFD", ch.Text)
					}
					text += ch.Text
				}
			}
			if text != whole.Text {
				t.Errorf("streamed %q, unstreamed %q", text, whole.Text)
			}
		})
	}
}

// orderedKeys returns the keys of a JSON object in their order, and its values.
func orderedKeys(t *testing.T, raw json.RawMessage) ([]string, []float64) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("top_logprobs entry %s is not an object", raw)
	}
	var keys []string
	var vals []float64
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var v float64
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		keys, vals = append(keys, k.(string)), append(vals, v)
	}
	return keys, vals
}

// TestTopLogprobsOrder checks OpenAI's top_logprobs: each position's object lists the
// alternatives best first (not sorted by their text, as a Go map marshals), and names
// tokens as "tokens" does, so that greedy decoding's token is its first key, </s> included.
func TestTopLogprobsOrder(t *testing.T) {
	ts := newTestServer(t, nil)
	unsorted := 0
	for _, tc := range []struct {
		name, body string
		eos        bool // the completion ends with </s>
	}{
		{"long", `{"model":"` + longModel + `","prompt":"` + goldenTexts[1] + `","max_tokens":20,"temperature":0,"logprobs":5`, false},
		{"ends with eos", `{"model":"` + reluRef + `","prompt":"summarize: Permission is hereby granted.","max_tokens":5,"temperature":0,"logprobs":3`, true},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s stream=%v", tc.name, stream), func(t *testing.T) {
				body := tc.body + "}"
				if stream {
					body = tc.body + `,"stream":true}`
				}
				var tokens []string
				var tops []json.RawMessage
				var text string
				for _, c := range postCompletion(t, ts, body) {
					for _, ch := range c.Choices {
						text += ch.Text
						if ch.Logprobs != nil {
							tokens = append(tokens, ch.Logprobs.Tokens...)
							tops = append(tops, ch.Logprobs.TopLogprobs...)
						}
					}
				}
				if len(tokens) == 0 || len(tops) != len(tokens) {
					t.Fatalf("%d tokens, %d top_logprobs", len(tokens), len(tops))
				}
				for i, top := range tops {
					keys, vals := orderedKeys(t, top)
					if len(keys) == 0 || keys[0] != tokens[i] {
						t.Errorf("position %d: token %q, top_logprobs %s: the chosen token is not named first", i, tokens[i], top)
					}
					if !slices.IsSortedFunc(vals, func(a, b float64) int { return -cmp.Compare(a, b) }) {
						t.Errorf("position %d: top_logprobs %s not best first", i, top)
					}
					if !slices.IsSorted(keys) {
						unsorted++
					}
				}
				if tc.eos {
					if last := tokens[len(tokens)-1]; last != "</s>" {
						t.Errorf("last token %q, want </s>", last)
					}
					if strings.Contains(text, "</s>") {
						t.Errorf("text %q holds </s>", text)
					}
				}
			})
		}
	}
	if unsorted == 0 {
		t.Error("every top_logprobs object happened to be sorted by text: the test shows nothing")
	}
}

// TestOpenAIModels checks GET /v1/models (every model a request can name: the registry's,
// the cache's and the directories', once each) and GET /v1/models/{id}.
func TestOpenAIModels(t *testing.T) {
	ts := newTestServer(t, nil)
	// Pull one of the two registry models; the other stays registry-only.
	if _, _, b := do(t, http.MethodPost, ts.URL+"/api/encode", `{"model":"`+reluRef+`","input":"a"}`); errorCode(b) != "" {
		t.Fatalf("pulling %s: %s", reluRef, b)
	}
	status, _, b := do(t, http.MethodGet, ts.URL+"/v1/models", "")
	var l api.OpenAIModelList
	if status != http.StatusOK || strictDecode(b, &l) != nil || l.Object != "list" {
		t.Fatalf("%d %s", status, b)
	}
	var ids []string
	for _, m := range l.Data {
		ids = append(ids, m.ID)
		if m.Object != "model" || m.OwnedBy != "t5zoo" || (m.ID == reluRef) != (m.Created > 0) {
			t.Errorf("model %+v: want object model, owned_by t5zoo, created for the pulled one only", m)
		}
	}
	if want := []string{longModel, gatedRef, reluRef}; !slices.Equal(ids, want) {
		t.Errorf("models %v, want %v", ids, want)
	}
	for _, m := range l.Data {
		status, _, b := do(t, http.MethodGet, ts.URL+"/v1/models/"+m.ID, "")
		var got api.OpenAIModel
		if status != http.StatusOK || strictDecode(b, &got) != nil || got != m {
			t.Errorf("GET /v1/models/%s: %d %s, want %+v", m.ID, status, b, m)
		}
	}
	for _, id := range []string{"acme/nothing:v1", "Bad%20Name", "long2"} {
		status, _, b := do(t, http.MethodGet, ts.URL+"/v1/models/"+id, "")
		if status != http.StatusNotFound {
			t.Errorf("GET /v1/models/%s: %d %s", id, status, b)
		}
		checkOpenAIError(t, b, "not_found_error", "not_found")
	}
}

// TestStopEndsDecoding checks that a completion whose text reaches a stop string leaves the
// decoding batch then, streamed or not: the engine decodes (and the usage counts) the tokens
// up to the one that completed the stop string, not max_tokens of them.
func TestStopEndsDecoding(t *testing.T) {
	ts := newTestServer(t, nil)
	tok, err := tokenizer.Open(longModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	var g api.GenerateResponse
	if err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: longModel, Input: longInput, GenerateOptions: api.GenerateOptions{MaxNewTokens: 12}},
		func(r api.GenerateResponse) error { g = r; return nil }); err != nil {
		t.Fatal(err)
	}
	h := g.Results[0].Hypotheses[0]
	// The stop string ends inside the text of the 5th token.
	prefix, _ := tok.Decode(h.IDs[:4], true)
	upTo5, _ := tok.Decode(h.IDs[:5], true)
	if len(upTo5) < len(prefix)+1 || !strings.HasPrefix(upTo5, prefix) {
		t.Fatalf("tokens %v: texts %q, %q", h.IDs, prefix, upTo5)
	}
	stop := upTo5[max(0, len(prefix)-2) : len(prefix)+1]
	cut := upTo5[:strings.Index(upTo5, stop)]
	const maxTokens = 400
	for _, tc := range []struct {
		name, extra string
		n           int
	}{
		{"plain", ``, 1},
		{"stream", `,"stream":true,"stream_options":{"include_usage":true}`, 1},
		{"greedy n=2", `,"n":2`, 2},
		{"greedy n=2 stream", `,"n":2,"stream":true,"stream_options":{"include_usage":true}`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := metricValue(t, ts, "t5zoo_output_tokens_total", "model="+longModel)
			stopJSON, _ := json.Marshal(stop)
			chunks := postCompletion(t, ts, fmt.Sprintf(`{"model":"%s","prompt":"%s","max_tokens":%d,"temperature":0,"stop":%s%s}`, longModel, longInput, maxTokens, stopJSON, tc.extra))
			texts, reasons := map[int]string{}, map[int]string{}
			var usage *api.CompletionUsage
			for _, c := range chunks {
				for _, ch := range c.Choices {
					texts[ch.Index] += ch.Text
					if ch.FinishReason != nil {
						reasons[ch.Index] = *ch.FinishReason
					}
				}
				if c.Usage != nil {
					usage = c.Usage
				}
			}
			for i := range tc.n {
				if texts[i] != cut || reasons[i] != "stop" {
					t.Errorf("choice %d: %q (%s), want %q (stop)", i, texts[i], reasons[i], cut)
				}
			}
			if usage == nil || usage.CompletionTokens != 5*tc.n {
				t.Errorf("usage %+v, want %d completion tokens: 5 per choice, up to the one that completed the stop string", usage, 5*tc.n)
			}
			// The stop is decided on the Batcher's goroutine, before its next step: the n
			// greedy copies share one sequence.
			if decoded := metricValue(t, ts, "t5zoo_output_tokens_total", "model="+longModel) - before; decoded != 5 {
				t.Errorf("the engine decoded %v tokens for a completion stopped at the 5th", decoded)
			}
		})
	}
}
