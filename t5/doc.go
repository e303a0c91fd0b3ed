// Package t5 is the one definition of the T5 computation, written once over the layer-level
// operations of a backend.Backend: embedding, RMS norm, self-attention with each stack's
// shared relative position bias over a ragged packed batch, the decoder's growing and
// forkable self-attention caches, cross-attention with keys and values computed once per
// input, relu and gated FFNs, the tied or untied LM head. It runs on any backend (the CPU,
// the plain reference twin, a GPU) without a line of its own that indexes activations.
//
// The numerics are those of Hugging Face transformers v4.30.2's modeling_t5.py: RMS layer
// norm, unscaled attention, the relative position bias of each stack's first layer shared by
// all its layers (bidirectional buckets in the encoder, causal ones in the decoder, none in
// cross-attention), tied embeddings scaled by d_model^-0.5 before the LM head.
//
// Inputs are batched without padding: the tokens of all inputs of a call are packed into one
// matrix, so that every product covers the whole batch while attention stays within each
// input (backend.AttnGroup). On a backend that promises it (both of this module's do), a
// batch gives bit for bit the answers its inputs give one by one.
//
// Weights are bound by the names and shapes of catalog.Shape.Tensors(), the one description
// of the state dict; q, k and v of a layer are prepared as one matrix, and the cross-attention
// k and v of a decoder layer as another, so that each is one product.
//
// Package infer builds decoding (greedy, beam search, sampling), scoring, encoding and
// continuous batching on this package; the fine-tuning package runs the same forward with
// its activations kept and adds the backward pass on the backend's training operations
// (see package backend for how those plug in).
package t5
