// Package infer is the T5 inference engine: it loads a Hugging Face T5 checkpoint from a
// local model directory (config.json and model.safetensors, sharded or not) and runs the
// encoder and decoder on the CPU to generate (greedy, beam search, sampling), score
// (log p(target | input)) and encode (hidden states and a mean-pooled embedding).
//
// The numerics follow Hugging Face transformers v4.30.2's modeling_t5.py, the project's
// reference: RMS layer norm, unscaled attention with the relative position bias of each
// stack's first layer shared by all its layers (bidirectional buckets in the encoder, causal
// ones in the decoder, none in cross-attention), relu or gated FFNs, tied embeddings scaled
// by d_model^-0.5 before the LM head, and HF's beam search rules. Everything is float32 but
// the softmax sums and the log-likelihoods, which are accumulated in float64.
//
// Inputs are batched without padding: the tokens of all inputs of a call are packed into one
// matrix, so every matrix product covers the whole batch while attention stays within each
// input. A batch therefore gives bit-for-bit the answers its inputs give one by one.
//
// Besides the one-call Generate, Score and Encode, the engine exposes the steps a
// continuous-batching server drives: RunEncoder encodes inputs once and keeps each one's
// cross-attention keys and values; Sequence holds a decoder hypothesis and its self-attention
// cache; Step extends any set of sequences, from any requests, by one token in one pass.
//
// Matrix products go through the Backend interface of infer/internal/mat, so faster kernels
// replace the pure-Go ones without touching the model code.
//
// infer never imports zoo or serve: resolving a model name to a directory is the caller's job.
package infer
