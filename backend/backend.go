// Package backend is the seam between the one T5 model definition (package t5) and the
// devices that run it. A Backend owns memory (activation tensors, prepared weights, attention
// key/value stores) and runs layer-level operations on it: linear layers with fused
// epilogues, RMS norm, activations, attention over a ragged batch, gathers, the LM head.
// The model definition never indexes activation memory itself; host access is an explicit
// copy (Upload, Download) or an operation whose result is host memory by contract (Logits).
//
// The backends:
//
//	backend/cpu      the CPU: assembly kernels (backend/cpu/kernels), weights packed once
//	                 into the kernels' panels (float32, bfloat16, int8), persistent workers
//	backend/plain    the reference twin: straightforward float32 loops, no packing, one
//	                 goroutine; every operation written as its definition reads
//	backend/backendtest  the conformance suite: every operation of any Backend against a
//	                 float64 reference, and the backend's determinism promise
//
// # Tensors
//
// A Tensor is a rows × cols float32 matrix view: Off and Stride locate it in Buf, the
// backend's storage (opaque to everyone else: a host slice for the CPU, a device allocation
// for a GPU). RowSlice and ColSlice make views without touching the backend, so that the
// model can address one input of a packed batch, or the keys of a fused q/k/v product,
// without a copy. The T5 computation needs nothing but 2-D views: every activation is
// [tokens, features], tokens of all inputs packed one after another without padding.
//
// # Determinism
//
// Every backend states its determinism promise in its package doc, and backendtest holds it
// to it. Both backends here promise that a row's result never depends on the other rows of
// the batch, nor on the number of workers: batched and unbatched calls give the same bits.
//
// # What plugs in next
//
// Fine-tuning (the training pass) is Trainer, the backward half a Backend implements beside
// the forward one. The forward operations already take or return everything a backward pass
// needs: the inputs of Linear, RMSNorm and Activate are tensors the caller keeps (a training
// forward does not reuse its scratch), and Attention writes its softmax probabilities to
// AttnGroup.Probs on request. Weights that change every step are Reload-ed in place from the
// optimizer's float32 master copy, keeping their Weight handle.
//
// A device whose memory is not the host's (CUDA). Tensors, Weights and KV stores are already
// backend-owned handles: a GPU backend keeps its device pointers in Buf and in its own KV
// and Cache types, implements Upload/Download as copies, Logits as the LM head followed by
// one device-to-host copy, and LogSumExp/Argmax on the host rows Logits returned. Nothing of
// the model definition changes; the decoder step's sequence of operations is fixed per batch
// shape, which is what lets a GPU backend capture it as a graph.
package backend

import (
	"errors"
	"fmt"
	"math"
)

// ErrNoMemory is wrapped by the errors of an allocation the system refused.
var ErrNoMemory = errors.New("backend: out of memory")

// DType is the storage type of a prepared weight (activations are float32).
type DType uint8

// The weight types.
const (
	F32  DType = iota // float32
	BF16              // bfloat16, widened exactly to float32 when multiplied
	Int8              // symmetric int8 per output row with a float32 scale (convert.QuantizeInt8), activations quantized per row on the fly
)

// String returns "f32", "bf16" or "int8".
func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Tensor is a Rows × Cols float32 matrix in a backend's storage: element (i, j) is element
// Off + i·Stride + j of Buf. The zero Tensor is empty (no rows). Only the backend that
// allocated Buf may be given the tensor.
type Tensor struct {
	Rows, Cols int
	Stride     int // elements from one row to the next, ≥ Cols
	Off        int // element (0, 0) in Buf
	Buf        any // the backend's storage; opaque to callers
}

// Empty reports whether t has no elements.
func (t Tensor) Empty() bool { return t.Rows == 0 || t.Cols == 0 }

// RowSlice is the view of rows [lo, hi) of t.
func (t Tensor) RowSlice(lo, hi int) Tensor {
	if lo < 0 || hi < lo || hi > t.Rows {
		panic(fmt.Sprintf("backend: rows [%d, %d) of a %d-row tensor", lo, hi, t.Rows))
	}
	t.Off += lo * t.Stride
	t.Rows = hi - lo
	return t
}

// ColSlice is the view of columns [lo, hi) of every row of t.
func (t Tensor) ColSlice(lo, hi int) Tensor {
	if lo < 0 || hi < lo || hi > t.Cols {
		panic(fmt.Sprintf("backend: columns [%d, %d) of a %d-column tensor", lo, hi, t.Cols))
	}
	t.Off += lo
	t.Cols = hi - lo
	return t
}

// Reshape is the rows × cols view of the first rows·cols elements of the contiguous t (one
// whose Stride is its Cols): scratch kept between passes of different sizes is reshaped
// rather than reallocated.
func (t Tensor) Reshape(rows, cols int) Tensor {
	if t.Stride != t.Cols && t.Rows > 1 || rows*cols > t.Rows*t.Cols {
		panic(fmt.Sprintf("backend: cannot view a %d×%d tensor (stride %d) as %d×%d", t.Rows, t.Cols, t.Stride, rows, cols))
	}
	t.Rows, t.Cols, t.Stride = rows, cols, cols
	return t
}

// Source is a row-major rows × cols matrix to prepare as a weight (an HF nn.Linear weight:
// one row per output feature, applied as y = x·Wᵀ).
type Source interface {
	Dims() (rows, cols int)
	// Float32 writes rows [r0, r0+len(dst)/cols) as float32 values into dst.
	Float32(r0 int, dst []float32) error
}

// QuantizedSource is a Source stored as int8 rows with one float32 scale per row (the
// scheme of convert.QuantizeInt8); Int8 weights are prepared from it unchanged.
type QuantizedSource interface {
	Source
	// Int8 writes rows [r0, r0+len(scales)) into q (cols values each) and their scales.
	Int8(r0 int, q []int8, scales []float32) error
}

// Weight is a prepared weight matrix: rows outputs × cols inputs, in the backend's layout.
type Weight interface {
	Dims() (rows, cols int)
	DType() DType
	// Bytes is the memory the weight occupies, padding included.
	Bytes() int64
}

// Epilogue is what Linear does with each result x at dst[i][j].
type Epilogue uint8

// The epilogues.
const (
	Store Epilogue = iota // dst = x
	Add                   // dst += x (a residual connection)
	ReLU                  // dst = max(x, 0)
)

// Activation is an FFN activation, as HF's ACT2FN names them.
type Activation uint8

// The activations.
const (
	ActReLU     Activation = iota // max(x, 0)
	ActGELUTanh                   // "gelu_new": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
	ActGELU                       // "gelu": 0.5·x·(1 + erf(x/√2))
	ActSiLU                       // "silu": x / (1 + exp(-x))
)

// Func returns the activation's definition as a float32 function: evaluated in float64 as
// HF's ACT2FN writes it ("gelu" the exact erf form), with explicit roundings so that no
// compiler fuses them, rounded once to float32. Backends with vector kernels for an
// activation (the CPU's gelu_new) are held to it by the conformance suite.
func (a Activation) Func() func(float32) float32 {
	switch a {
	case ActReLU:
		return func(x float32) float32 { return max(x, 0) }
	case ActGELUTanh:
		// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), HF NewGELUActivation.
		c := math.Sqrt(2 / math.Pi)
		return func(x float32) float32 {
			v := float64(x)
			u := float64(c * float64(v+float64(0.044715*v*v*v)))
			return float32(0.5 * v * float64(1+math.Tanh(u)))
		}
	case ActGELU:
		return func(x float32) float32 {
			v := float64(x)
			return float32(0.5 * v * float64(1+math.Erf(v/math.Sqrt2)))
		}
	case ActSiLU:
		return func(x float32) float32 {
			v := float64(x)
			return float32(v / float64(1+math.Exp(-v)))
		}
	}
	panic(fmt.Sprintf("backend: unknown activation %d", a))
}

// ParseActivation maps HF's activation name to an Activation.
func ParseActivation(name string) (Activation, error) {
	switch name {
	case "relu":
		return ActReLU, nil
	case "gelu_new":
		return ActGELUTanh, nil
	case "gelu":
		return ActGELU, nil
	case "silu":
		return ActSiLU, nil
	}
	return 0, fmt.Errorf("backend: unknown activation %q", name)
}

// KV is the keys and values one layer's attention reads for one sequence or input, in the
// backend's layout: Len positions, each num_heads·d_kv keys and as many values.
type KV interface {
	Len() int
}

// Cache is one decoder sequence's self-attention keys and values in every layer, which
// grow by the positions fed. Forks share the positions already cached: appending to one
// never changes another. A Cache is used by one goroutine at a time.
type Cache interface {
	// Len is the number of positions cached (those of layer 0).
	Len() int
	// Layer returns layer l's keys and values, for Attention.
	Layer(l int) KV
	// Reserve makes room for n more positions in every layer; the Appends of one decoder
	// pass follow it.
	Reserve(n int)
	// Append copies the rows of kv to layer l: each row is a position's keys (the first half
	// of its columns) then its values (the second half).
	Append(l int, kv Tensor)
	// Truncate drops the positions from n on in every layer (the undo of a failed pass).
	Truncate(n int)
	// Fork returns an independent cache with the same positions.
	Fork() Cache
}

// Span is rows [Off, Off+N) of a packed batch: one input or sequence.
type Span struct{ Off, N int }

// AttnGroup is the query rows of one input or sequence and the keys and values they attend
// to. Q and Out are N × num_heads·d_kv (head h in columns [h·d_kv, (h+1)·d_kv)); query row
// i is at position Pos0+i.
type AttnGroup struct {
	Q, Out Tensor
	Pos0   int
	KV     KV
	// Causal lets the query at position p see keys 0..p only.
	Causal bool
	// Probs, when not empty, receives the softmax probabilities, num_heads·N rows (head
	// after head) × KV.Len() columns, zero past a causal query's last key: what the backward
	// pass of attention needs.
	Probs Tensor
}

// Backend runs the T5 operations on one device. Its methods are safe for concurrent use
// unless they say otherwise; operands of concurrent calls must not overlap where written.
// Operations panic on operands whose shapes do not fit (a bug of the caller, never of input
// data: the model checks requests before it runs them).
type Backend interface {
	// Name names the backend and its code path ("avx512", "avx2", "generic" for the CPU;
	// "plain").
	Name() string
	// Threads is the number of workers an operation uses, the caller included.
	Threads() int
	// Close releases every weight and the workers; nothing obtained from the backend may be
	// used afterwards.
	Close() error

	// Alloc returns a new zeroed rows × cols tensor.
	Alloc(rows, cols int) Tensor
	// Upload copies the host values src (row-major, dst.Rows × dst.Cols) into dst.
	Upload(dst Tensor, src []float32)
	// Download copies src into the host slice dst (row-major, src.Rows × src.Cols).
	Download(dst []float32, src Tensor)

	// Prepare makes a weight of src in type dt. Int8 weights come from a QuantizedSource
	// unchanged, or are quantized per row with convert.QuantizeInt8.
	Prepare(src Source, dt DType) (Weight, error)
	// Reload rewrites w in place from src, which must have w's dimensions: the weights of a
	// model being trained change every step.
	Reload(w Weight, src Source) error
	// WeightBytes is the memory all prepared weights occupy: the sum of their Bytes.
	WeightBytes() int64

	// Embed sets row i of dst to row ids[i] of table (float32; q·scale for int8).
	Embed(dst Tensor, table Weight, ids []int)
	// RMSNorm sets each row of dst to w ⊙ x · rsqrt(mean(x²) + eps), HF's T5LayerNorm: the
	// mean of squares accumulated in float64, the variance and its reciprocal root rounded
	// to float32, then w·(x·inv) rounded after each product. w is 1 × Cols.
	RMSNorm(dst, x, w Tensor, eps float32)
	// Linear sets dst = ep(dst, x · wᵀ) for a weight of dst.Cols × x.Cols.
	Linear(dst, x Tensor, w Weight, ep Epilogue)
	// Activate sets a = act(a) ⊙ b (gated FFNs), or a = act(a) when b is empty.
	Activate(a, b Tensor, act Activation)
	// Scale sets x = s·x.
	Scale(x Tensor, s float32)

	// CrossKV returns, for each span of kv, that input's keys and values as one layer's KV:
	// row r of kv holds a position's num_heads·d_kv keys then as many values. They are
	// arranged (copied) once here for every decoder step that reads them: kv may be reused
	// afterwards.
	CrossKV(dst []KV, kv Tensor, spans []Span, heads int)
	// ViewKV returns the keys and values in the rows of kv (each a position's num_heads·d_kv
	// keys then as many values), read in place: valid while kv holds them. The encoder's
	// self-attention reads its keys once, straight from the q/k/v product.
	ViewKV(kv Tensor) KV
	// NewCache returns an empty self-attention cache of layers layers.
	NewCache(layers, heads, dkv int) Cache
	// Attention computes, for every group, head h and query row i,
	//   Out[i, h] = Σ_j softmax_j(Q[i, h]·K_j[h] + bias[h][clamp(j - pos_i) + D]) · V_j[h]
	// without scaling the scores (T5 folds 1/√d_kv into its weights), over the keys the
	// query sees. bias is heads × (2D+1), the position bias of each clamped relative position
	// −D..D; empty means none (cross-attention). The softmax is float32 with its normaliser
	// summed in float64. A group's results depend on nothing but the group.
	Attention(groups []AttnGroup, heads int, bias Tensor)

	// Logits sets the host rows dst (hidden.Rows × vocab) to (scale·hidden)·headᵀ, the LM
	// head; hidden is scaled in place when scale is not 1.
	Logits(dst []float32, hidden Tensor, head Weight, scale float32)
	// LogSumExp returns log Σ exp(row) of a host logits row: exponentials in float32, their
	// sum in float64; −Inf for a row of −Inf.
	LogSumExp(row []float32) float64
	// Argmax returns the index of the first largest value of a host logits row.
	Argmax(row []float32) int
}

// Trainer is the backward half of a Backend: the gradient of every operation the T5
// training forward uses, plus the loss, dropout and the reductions an optimizer step needs.
// Gradients are float32 tensors of the backend; a weight's gradient has the weight's rows ×
// cols. Operations that accumulate (the weight gradients, dbias, EmbedBackward) add to
// what their destination holds, so that the gradients of shared weights (the tied embedding,
// the position bias) and of accumulated micro-batches sum in place; Zero clears them.
type Trainer interface {
	Backend

	// Zero sets every element of t to 0.
	Zero(t Tensor)
	// Copy sets dst = src (same dims).
	Copy(dst, src Tensor)
	// AddTo sets dst += src (same dims): the gradient of a residual connection.
	AddTo(dst, src Tensor)
	// SumSquares returns Σ t² accumulated in float64: the gradient norm.
	SumSquares(t Tensor) float64

	// LinearBackward is the gradient of dst = x·wᵀ for a float32 weight w of dy.Cols ×
	// x.Cols: dx = ep(dx, dy·w) (ep Store or Add) unless dx is empty, and dw += dyᵀ·x unless
	// dw is empty. dx must not overlap dy or x.
	LinearBackward(dx, dw, dy, x Tensor, w Weight, ep Epilogue)
	// RMSNormBackward is the gradient of y = RMSNorm(x, w, eps) (Backend.RMSNorm): dx =
	// ep(dx, ∂L/∂x) (ep Store or Add) and dw += Σ_rows dy ⊙ x·rsqrt(mean(x²)+eps). dx must not
	// overlap dy or x.
	RMSNormBackward(dx, dw, dy, x, w Tensor, eps float32, ep Epilogue)
	// ActivateBackward is the gradient of y = act(a) ⊙ b (b empty: y = act(a)), given the
	// forward's inputs a and b (before Activate overwrote a: the caller keeps a copy):
	// da = dy ⊙ b ⊙ act'(a) and, when b is not empty, db = dy ⊙ act(a). da may be dy.
	ActivateBackward(da, db, dy, a, b Tensor, act Activation)
	// AttentionBackward is the gradient of Attention for each group (AttnGrad): it writes
	// DQ and DKV, and adds to dbias (heads × (2D+1), as Attention's bias) the gradient of
	// every clamped relative position's bias, unless dbias is empty (cross-attention).
	AttentionBackward(groups []AttnGrad, heads int, dbias Tensor)
	// EmbedBackward adds row i of dy to row ids[i] of dtable (vocab × d_model), for every i:
	// the scatter-add of the embedding's gradient (repeated ids accumulate).
	EmbedBackward(dtable, dy Tensor, ids []int)

	// CrossEntropy turns each row i of logits (tokens × vocab) into its gradient, in place:
	// for labels[i] ≥ 0, scale·(softmax(row) − onehot(labels[i])); for labels[i] < 0 (HF's
	// -100), zeros. It returns the sum over labelled rows of −log softmax(row)[labels[i]]
	// (float64), and how many labelled rows have their label as their first argmax.
	CrossEntropy(logits Tensor, labels []int, scale float32) (loss float64, correct int)
	// Dropout sets x = x ⊙ keep / (1−p) with keep(i, j) = DropoutKeep(seed, i, j, p) for the
	// view's row i and column j: applying the same call to the gradient is the backward.
	Dropout(x Tensor, p float32, seed uint64)
}

// AttnGrad is one group of an attention backward: the forward's operands and the gradient
// of its output. Q, DQ, DOut are N × num_heads·d_kv; KV and DKV are Lk × 2·num_heads·d_kv
// (each key position's keys then its values, as the q/k/v or k/v product wrote them);
// Probs is what the forward wrote to AttnGroup.Probs (num_heads·N × Lk). DQ and DKV are
// written (not accumulated).
type AttnGrad struct {
	Q, KV, Probs, DOut Tensor
	DQ, DKV            Tensor
	Pos0               int
	Causal             bool
}

// DropoutKeep reports whether element (i, j) of a dropout site seeded seed survives at rate
// p: a counter-based hash, so that every backend drops the same elements and the backward
// (or a recomputed forward) needs no stored mask.
func DropoutKeep(seed uint64, i, j int, p float32) bool {
	z := seed ^ (uint64(uint32(i))<<32 | uint64(uint32(j)))
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	// The top 24 bits as a uniform in [0, 1).
	return float32(z>>40)*(1.0/(1<<24)) >= p
}
