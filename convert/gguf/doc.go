// Package gguf reads and writes GGUF, the single-file model format of ggml and llama.cpp
// (version 3, little-endian; ggml's docs/gguf.md), and exports T5 checkpoints to it with the
// tensor names and metadata keys that llama.cpp's T5 support reads.
//
// The format, in file order:
//
//	header        magic "GGUF", version uint32 (3), tensor count uint64, metadata count uint64
//	metadata      key (string), value type uint32, value; repeated
//	tensor infos  name (string), n_dims uint32, ne[n_dims] uint64, ggml type uint32,
//	              offset uint64 (relative to the data section, a multiple of the alignment)
//	padding       zeros up to a multiple of general.alignment (default 32)
//	data          the tensors, each starting at its offset, zero-padded to the alignment
//
// Strings are a uint64 byte length followed by the bytes; arrays are an element type uint32, a
// uint64 element count and the elements. Dimensions are ggml's ne[]: ne[0] is the innermost,
// fastest-varying one, so a PyTorch tensor of shape [out, in] is stored with ne = {in, out}
// and the same bytes. This package's API takes and returns shapes in PyTorch (row-major) order
// and exposes ne as TensorInfo.Dims.
//
// Read validates a file strictly before anything is used: the magic and version, every count
// and length against the bytes that remain, overflow in sizes and offsets, the alignment,
// tensor offsets (aligned, inside the file, not overlapping), duplicate keys and tensor names.
// A malformed file is an error wrapping ErrFormat, never a panic.
package gguf
