package infer

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/t5zoo/t5zoo/convert/safetensors"
	"github.com/t5zoo/t5zoo/t5"
)

// Tolerances from testdata's golden README ("Suggested comparison tolerances"): the golden
// values' own float32 noise is at most 2.6e-6 on hidden states and 1.7e-5 on logits.
const (
	tolHidden    = 1e-4 // absolute, encoder and decoder hidden states
	tolLogits    = 5e-4 // absolute, logits
	tolLoglikRel = 1e-3 // relative, log-likelihood sums
	tolBeamScore = 1e-4 // absolute, beam sequence scores (float32 sums of ~20 log-probs)
)

var goldenModels = []string{"tiny-relu", "tiny-gated"}

type rowSummary struct {
	Sum    float64   `json:"sum"`
	AbsSum float64   `json:"abs_sum"`
	Head   []float64 `json:"head"`
	Tail   []float64 `json:"tail"`
}

type golden struct {
	Buckets struct {
		Bidirectional  []int `json:"bidirectional_encoder"`
		Unidirectional []int `json:"unidirectional_decoder"`
		Min            int   `json:"relative_position_min"`
	} `json:"relative_position_buckets"`
	Encoder struct {
		InputIDs [][]int        `json:"input_ids"`
		Rows     [][]rowSummary `json:"rows"`
	} `json:"encoder"`
	TeacherForcing struct {
		DecoderInputIDs [][]int `json:"decoder_input_ids"`
		ProbeIndices    []int   `json:"probe_indices"`
		Positions       [][]struct {
			Argmax    int       `json:"argmax"`
			Max       float64   `json:"max"`
			LogSumExp float64   `json:"logsumexp"`
			Probe     []float64 `json:"probe"`
		} `json:"positions"`
		Argmax [][]int `json:"argmax"`
	} `json:"teacher_forcing"`
	Loglik struct {
		Labels        [][]int     `json:"labels"`
		SumLogprob    []float64   `json:"sum_logprob"`
		TokenLogprobs [][]float64 `json:"token_logprobs"`
	} `json:"loglik"`
	Greedy struct {
		Params struct {
			MaxNewTokens int `json:"max_new_tokens"`
		} `json:"params"`
		Sequences        [][]int     `json:"sequences"`
		StepLogprobs     [][]float64 `json:"step_logprobs"`
		BatchedSequences [][]int     `json:"batched_sequences"`
	} `json:"greedy"`
	Beam struct {
		Params struct {
			MaxNewTokens       int     `json:"max_new_tokens"`
			NumBeams           int     `json:"num_beams"`
			LengthPenalty      float64 `json:"length_penalty"`
			EarlyStopping      bool    `json:"early_stopping"`
			NumReturnSequences int     `json:"num_return_sequences"`
		} `json:"params"`
		PerInput []struct {
			Sequences [][]int   `json:"sequences"`
			Scores    []float64 `json:"sequences_scores"`
		} `json:"per_input"`
		BatchedTop1Sequences [][]int   `json:"batched_top1_sequences"`
		BatchedTop1Scores    []float64 `json:"batched_top1_scores"`
	} `json:"beam"`
	Long struct {
		InputIDs           []int        `json:"input_ids"`
		EncoderRows        []rowSummary `json:"encoder_rows"`
		Labels             []int        `json:"labels"`
		SumLogprob         float64      `json:"sum_logprob"`
		TokenLogprobs      []float64    `json:"token_logprobs"`
		GreedySequence     []int        `json:"greedy_sequence"`
		GreedyStepLogprobs []float64    `json:"greedy_step_logprobs"`
	} `json:"long"`
}

func loadGolden(t testing.TB, name string) (*Model, *golden, *safetensors.File) {
	t.Helper()
	dir := filepath.Join("..", "testdata", "golden", name)
	raw, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	g := new(golden)
	if err := json.Unmarshal(raw, g); err != nil {
		t.Fatal(err)
	}
	tensors, err := safetensors.Open(filepath.Join(dir, "golden_tensors.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tensors.Close() })
	m, err := Load(t.Context(), filepath.Join(dir, "checkpoint"), testOptions(t, LoadOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, g, tensors
}

func goldenF32(t testing.TB, f *safetensors.File, name string) ([]float32, []int) {
	t.Helper()
	v, _, err := f.Float32s(name)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Lookup(name)
	return v, info.Shape
}

func goldenI64(t testing.TB, f *safetensors.File, name string) []int64 {
	t.Helper()
	b, err := f.Bytes(name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, len(b)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out
}

// maxAbsDiff returns max |a[i] - b[i]|.
func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func TestGoldenBuckets(t *testing.T) {
	for _, name := range goldenModels {
		t.Run(name, func(t *testing.T) {
			m, g, _ := loadGolden(t, name)
			nb, md := m.shape.RelativeAttentionNumBuckets, m.shape.RelativeAttentionMaxDistance
			for i := range g.Buckets.Bidirectional {
				rel := g.Buckets.Min + i
				if got := t5.RelativePositionBucket(rel, true, nb, md); got != g.Buckets.Bidirectional[i] {
					t.Errorf("bidirectional bucket(%d) = %d, want %d", rel, got, g.Buckets.Bidirectional[i])
				}
				if got := t5.RelativePositionBucket(rel, false, nb, md); got != g.Buckets.Unidirectional[i] {
					t.Errorf("unidirectional bucket(%d) = %d, want %d", rel, got, g.Buckets.Unidirectional[i])
				}
				// The clamped tables the model uses agree.
				if e, d := m.t.Bucket(rel); e != g.Buckets.Bidirectional[i] || d != g.Buckets.Unidirectional[i] {
					t.Errorf("table bucket(%d) = %d/%d, want %d/%d", rel, e, d, g.Buckets.Bidirectional[i], g.Buckets.Unidirectional[i])
				}
			}
		})
	}
}

// TestGoldenEncoder compares the encoder's last_hidden_state with the full golden tensor
// (batched and unbatched) and the long input's with its golden tensor.
func TestGoldenEncoder(t *testing.T) {
	for _, name := range goldenModels {
		t.Run(name, func(t *testing.T) {
			m, g, tensors := loadGolden(t, name)
			want, shape := goldenF32(t, tensors, "encoder.last_hidden_state")
			lpad, d := shape[1], shape[2]
			outs, err := m.Encode(t.Context(), g.Encoder.InputIDs)
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for b, ids := range g.Encoder.InputIDs {
				got := outs[b].Hidden
				diff := maxAbsDiff(got, want[b*lpad*d:(b*lpad+len(ids))*d])
				worst = max(worst, diff)
				if diff > tolHidden {
					t.Errorf("row %d: max |diff| %.3g > %g", b, diff, tolHidden)
				}
				one, err := m.Encode(t.Context(), [][]int{ids})
				if err != nil {
					t.Fatal(err)
				}
				if maxAbsDiff(one[0].Hidden, got) != 0 {
					t.Errorf("row %d: batched encoder output differs from unbatched", b)
				}
			}
			t.Logf("encoder max |diff| %.3g", worst)

			longWant, _ := goldenF32(t, tensors, "long.encoder.last_hidden_state")
			long, err := m.Encode(t.Context(), [][]int{g.Long.InputIDs})
			if err != nil {
				t.Fatal(err)
			}
			diff := maxAbsDiff(long[0].Hidden, longWant)
			t.Logf("long encoder max |diff| %.3g", diff)
			if diff > tolHidden {
				t.Errorf("long: max |diff| %.3g > %g", diff, tolHidden)
			}
		})
	}
}

// TestGoldenTeacherForcing feeds the golden decoder_input_ids to all five inputs in one
// batch and compares decoder hidden states and logits with the golden tensors.
func TestGoldenTeacherForcing(t *testing.T) {
	for _, name := range goldenModels {
		t.Run(name, func(t *testing.T) {
			m, g, tensors := loadGolden(t, name)
			wantH, _ := goldenF32(t, tensors, "decoder.last_hidden_state")
			wantL, _ := goldenF32(t, tensors, "decoder.logits")
			encs, err := m.RunEncoder(t.Context(), g.Encoder.InputIDs)
			if err != nil {
				t.Fatal(err)
			}
			seqs := make([]*Sequence, len(encs))
			for i, e := range encs {
				seqs[i] = e.NewSequence()
			}
			hidden, logits, err := m.t.FeedHidden(t.Context(), seqs, g.TeacherForcing.DecoderInputIDs)
			if err != nil {
				t.Fatal(err)
			}
			dh := maxAbsDiff(hidden, wantH)
			dl := maxAbsDiff(logits, wantL)
			t.Logf("decoder hidden max |diff| %.3g, logits max |diff| %.3g", dh, dl)
			if dh > tolHidden {
				t.Errorf("decoder hidden max |diff| %.3g > %g", dh, tolHidden)
			}
			if dl > tolLogits {
				t.Errorf("logits max |diff| %.3g > %g", dl, tolLogits)
			}
			V := m.shape.VocabSize
			for b, row := range g.TeacherForcing.Argmax {
				for j, want := range row {
					r := b*len(row) + j
					if got := argmax(logits[r*V : (r+1)*V]); got != want {
						t.Errorf("argmax[%d][%d] = %d, want %d", b, j, got, want)
					}
					if lse := m.logSumExp(logits[r*V : (r+1)*V]); math.Abs(lse-g.TeacherForcing.Positions[b][j].LogSumExp) > tolLogits {
						t.Errorf("logsumexp[%d][%d] = %v, want %v", b, j, lse, g.TeacherForcing.Positions[b][j].LogSumExp)
					}
				}
			}
		})
	}
}

func checkLoglik(t *testing.T, what string, got ScoreResult, wantSum float64, wantTok []float64) {
	t.Helper()
	if rel := math.Abs(got.SumLogprob-wantSum) / math.Abs(wantSum); rel > tolLoglikRel {
		t.Errorf("%s: sum_logprob %v, want %v (rel diff %.3g)", what, got.SumLogprob, wantSum, rel)
	}
	if len(got.TokenLogprobs) != len(wantTok) {
		t.Fatalf("%s: %d token logprobs, want %d", what, len(got.TokenLogprobs), len(wantTok))
	}
	for j := range wantTok {
		if d := math.Abs(got.TokenLogprobs[j] - wantTok[j]); d > tolLogits {
			t.Errorf("%s: token_logprobs[%d] = %v, want %v", what, j, got.TokenLogprobs[j], wantTok[j])
		}
	}
}

// TestGoldenLoglik scores the golden (input, label) pairs in one batch, one by one, and the
// long case, against the golden sum_logprob and token_logprobs.
func TestGoldenLoglik(t *testing.T) {
	for _, name := range goldenModels {
		t.Run(name, func(t *testing.T) {
			m, g, _ := loadGolden(t, name)
			pairs := make([]ScorePair, len(g.Encoder.InputIDs))
			for i := range pairs {
				pairs[i] = ScorePair{Input: g.Encoder.InputIDs[i], Target: g.Loglik.Labels[i]}
			}
			res, err := m.Score(t.Context(), pairs)
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for i := range pairs {
				checkLoglik(t, "batched", res[i], g.Loglik.SumLogprob[i], g.Loglik.TokenLogprobs[i])
				worst = max(worst, math.Abs(res[i].SumLogprob-g.Loglik.SumLogprob[i])/math.Abs(g.Loglik.SumLogprob[i]))
				one, err := m.Score(t.Context(), pairs[i:i+1])
				if err != nil {
					t.Fatal(err)
				}
				if one[0].SumLogprob != res[i].SumLogprob {
					t.Errorf("pair %d: unbatched sum %v != batched %v", i, one[0].SumLogprob, res[i].SumLogprob)
				}
			}
			long, err := m.Score(t.Context(), []ScorePair{{Input: g.Long.InputIDs, Target: g.Long.Labels}})
			if err != nil {
				t.Fatal(err)
			}
			checkLoglik(t, "long", long[0], g.Long.SumLogprob, g.Long.TokenLogprobs)
			worst = max(worst, math.Abs(long[0].SumLogprob-g.Long.SumLogprob)/math.Abs(g.Long.SumLogprob))
			t.Logf("loglik max rel diff %.3g", worst)
		})
	}
}
