// Package mat holds the dense float32 products of the T5 engine behind one small interface,
// Backend, so that faster kernels (prepacked weights, assembly) or a GPU backend replace the
// pure-Go code here without touching the model code in package infer.
//
// Every weight is used the way PyTorch's nn.Linear stores it: an out×in row-major matrix W,
// applied as y = x·Wᵀ. The model computes nothing else with weights.
package mat

import "fmt"

// Weight is a weight matrix prepared by a Backend for repeated products.
type Weight interface {
	// Dims returns the matrix's rows (output features) and columns (input features).
	Dims() (rows, cols int)
}

// Backend computes the model's matrix products.
type Backend interface {
	// Prepare readies the r×c row-major matrix data for MulT. It is called once per weight
	// at load time; it may keep a reference to data (which may be read-only mapped memory)
	// or pack a copy into its own layout.
	Prepare(data []float32, r, c int) Weight
	// MulT sets dst (m×r) = a (m×c) · wᵀ for a weight w of r×c. It panics if the slices are
	// too short for the dimensions.
	MulT(dst, a []float32, m int, w Weight)
}

// Matrix is a plain r×c row-major matrix; it is the Weight of the pure-Go backend.
type Matrix struct {
	Data       []float32
	Rows, Cols int
}

// Dims returns the matrix dimensions.
func (m *Matrix) Dims() (rows, cols int) { return m.Rows, m.Cols }

// NewMatrix wraps data as an r×c matrix. It panics if data is not exactly r·c long.
func NewMatrix(data []float32, r, c int) *Matrix {
	if r < 0 || c < 0 || len(data) != r*c {
		panic(fmt.Sprintf("infer: mat: %d values for a %d×%d matrix", len(data), r, c))
	}
	return &Matrix{Data: data, Rows: r, Cols: c}
}
