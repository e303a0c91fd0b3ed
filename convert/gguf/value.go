package gguf

import (
	"fmt"
	"math"
)

// ScalarType is the Go type of a scalar metadata value.
type ScalarType interface {
	uint8 | int8 | uint16 | int16 | uint32 | int32 | float32 | bool | string | uint64 | int64 | float64
}

// Value is a typed metadata value: a scalar, a string, an array of scalars or strings, or an
// array of arrays. The zero Value is invalid; build values with Scalar, Array, NestedArray or
// the shorthands (String, Uint32, ...). Values read from a file own their memory.
type Value struct {
	typ  ValueType
	elem ValueType // element type of an array
	// v is the Go value: one of the ScalarType types, a slice of one of them, or []Value for
	// an array of arrays.
	v any
}

// KV is one metadata entry.
type KV struct {
	Key   string
	Value Value
}

func scalarType(x any) ValueType {
	switch x.(type) {
	case uint8:
		return TypeUint8
	case int8:
		return TypeInt8
	case uint16:
		return TypeUint16
	case int16:
		return TypeInt16
	case uint32:
		return TypeUint32
	case int32:
		return TypeInt32
	case float32:
		return TypeFloat32
	case bool:
		return TypeBool
	case string:
		return TypeString
	case uint64:
		return TypeUint64
	case int64:
		return TypeInt64
	case float64:
		return TypeFloat64
	}
	panic(fmt.Sprintf("gguf: %T is not a scalar type", x))
}

// Scalar returns the value x with the metadata type of its Go type.
func Scalar[T ScalarType](x T) Value { return Value{typ: scalarType(x), v: x} }

// Array returns an array of xs with the metadata type of T. The slice is kept, not copied.
func Array[T ScalarType](xs []T) Value {
	var zero T
	if xs == nil {
		xs = []T{}
	}
	return Value{typ: TypeArray, elem: scalarType(zero), v: xs}
}

// NestedArray returns an array whose elements are arrays (docs/gguf.md allows nesting;
// llama.cpp's own reader does not). Each element must be an array value.
func NestedArray(xs []Value) (Value, error) {
	for i, x := range xs {
		if x.typ != TypeArray {
			return Value{}, fmt.Errorf("gguf: nested array element %d is a %s, not an array", i, x.typ)
		}
		if err := x.check(1); err != nil {
			return Value{}, fmt.Errorf("gguf: nested array element %d: %w", i, err)
		}
	}
	if xs == nil {
		xs = []Value{}
	}
	return Value{typ: TypeArray, elem: TypeArray, v: xs}, nil
}

// String returns a string value.
func String(s string) Value { return Scalar(s) }

// Uint32 returns a uint32 value.
func Uint32(x uint32) Value { return Scalar(x) }

// Float32 returns a float32 value.
func Float32(x float32) Value { return Scalar(x) }

// Bool returns a bool value.
func Bool(b bool) Value { return Scalar(b) }

// maxNesting bounds arrays of arrays, on write and on read.
const maxNesting = 8

// check reports whether v was built by this package's constructors (or the reader).
func (v Value) check(depth int) error {
	if v.v == nil {
		return fmt.Errorf("invalid (zero) value")
	}
	if v.typ != TypeArray {
		if !v.typ.Valid() || scalarType(v.v) != v.typ {
			return fmt.Errorf("value of Go type %T does not match type %s", v.v, v.typ)
		}
		return nil
	}
	if depth >= maxNesting {
		return fmt.Errorf("arrays nested deeper than %d", maxNesting)
	}
	if v.elem == TypeArray {
		xs, ok := v.v.([]Value)
		if !ok {
			return fmt.Errorf("array of arrays holds %T", v.v)
		}
		for _, x := range xs {
			if x.typ != TypeArray {
				return fmt.Errorf("array of arrays holds a %s", x.typ)
			}
			if err := x.check(depth + 1); err != nil {
				return err
			}
		}
		return nil
	}
	ok := false
	switch v.v.(type) {
	case []uint8:
		ok = v.elem == TypeUint8
	case []int8:
		ok = v.elem == TypeInt8
	case []uint16:
		ok = v.elem == TypeUint16
	case []int16:
		ok = v.elem == TypeInt16
	case []uint32:
		ok = v.elem == TypeUint32
	case []int32:
		ok = v.elem == TypeInt32
	case []float32:
		ok = v.elem == TypeFloat32
	case []bool:
		ok = v.elem == TypeBool
	case []string:
		ok = v.elem == TypeString
	case []uint64:
		ok = v.elem == TypeUint64
	case []int64:
		ok = v.elem == TypeInt64
	case []float64:
		ok = v.elem == TypeFloat64
	}
	if !ok {
		return fmt.Errorf("array of %s holds %T", v.elem, v.v)
	}
	return nil
}

// Type is the value's metadata type.
func (v Value) Type() ValueType { return v.typ }

// ElemType is the element type of an array value (TypeArray for an array of arrays).
func (v Value) ElemType() ValueType { return v.elem }

// Any returns the Go value: a ScalarType value, a slice of one, or []Value for an array of
// arrays. Slices are shared with v and must not be modified.
func (v Value) Any() any { return v.v }

// Len is the number of elements of an array value, 0 for a scalar.
func (v Value) Len() int {
	switch xs := v.v.(type) {
	case []uint8:
		return len(xs)
	case []int8:
		return len(xs)
	case []uint16:
		return len(xs)
	case []int16:
		return len(xs)
	case []uint32:
		return len(xs)
	case []int32:
		return len(xs)
	case []float32:
		return len(xs)
	case []bool:
		return len(xs)
	case []string:
		return len(xs)
	case []uint64:
		return len(xs)
	case []int64:
		return len(xs)
	case []float64:
		return len(xs)
	case []Value:
		return len(xs)
	}
	return 0
}

// Uint returns an integer value as uint64; ok is false for other types and negative values.
func (v Value) Uint() (x uint64, ok bool) {
	switch n := v.v.(type) {
	case uint8:
		return uint64(n), true
	case uint16:
		return uint64(n), true
	case uint32:
		return uint64(n), true
	case uint64:
		return n, true
	case int8, int16, int32, int64:
		i, _ := v.Int()
		if i < 0 {
			return 0, false
		}
		return uint64(i), true
	}
	return 0, false
}

// Int returns an integer value as int64; ok is false for other types and for uint64 values
// above math.MaxInt64.
func (v Value) Int() (x int64, ok bool) {
	switch n := v.v.(type) {
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8, uint16, uint32, uint64:
		u, _ := v.Uint()
		if u > math.MaxInt64 {
			return 0, false
		}
		return int64(u), true
	}
	return 0, false
}

// Float returns a float32 or float64 value as float64.
func (v Value) Float() (x float64, ok bool) {
	switch f := v.v.(type) {
	case float32:
		return float64(f), true
	case float64:
		return f, true
	}
	return 0, false
}

// Str returns a string value.
func (v Value) Str() (s string, ok bool) {
	s, ok = v.v.(string)
	return s, ok
}

// Bool returns a bool value.
func (v Value) Bool() (b bool, ok bool) {
	b, ok = v.v.(bool)
	return b, ok
}

// ArrayOf returns the elements of an array value whose element type is T's. The slice is
// shared with v and must not be modified.
func ArrayOf[T ScalarType](v Value) ([]T, bool) {
	xs, ok := v.v.([]T)
	return xs, ok && v.typ == TypeArray
}

// Equal reports whether a and b have the same type and contents; floats compare by bits, so
// NaNs with the same payload are equal.
func Equal(a, b Value) bool {
	if a.typ != b.typ || a.elem != b.elem {
		return false
	}
	switch x := a.v.(type) {
	case float32:
		y, ok := b.v.(float32)
		return ok && math.Float32bits(x) == math.Float32bits(y)
	case float64:
		y, ok := b.v.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case []float32:
		y, ok := b.v.([]float32)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return false
			}
		}
		return true
	case []float64:
		y, ok := b.v.([]float64)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
				return false
			}
		}
		return true
	case []Value:
		y, ok := b.v.([]Value)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case []uint8:
		return sliceEq(x, b.v)
	case []int8:
		return sliceEq(x, b.v)
	case []uint16:
		return sliceEq(x, b.v)
	case []int16:
		return sliceEq(x, b.v)
	case []uint32:
		return sliceEq(x, b.v)
	case []int32:
		return sliceEq(x, b.v)
	case []bool:
		return sliceEq(x, b.v)
	case []string:
		return sliceEq(x, b.v)
	case []uint64:
		return sliceEq(x, b.v)
	case []int64:
		return sliceEq(x, b.v)
	}
	return a.v == b.v
}

func sliceEq[T comparable](x []T, other any) bool {
	y, ok := other.([]T)
	if !ok || len(x) != len(y) {
		return false
	}
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

func (v Value) String() string {
	switch v.typ {
	case TypeArray:
		if v.elem == TypeArray {
			return fmt.Sprintf("[%d arrays]", v.Len())
		}
		return fmt.Sprintf("[%d × %s]", v.Len(), v.elem)
	case TypeString:
		return fmt.Sprintf("%q", v.v)
	}
	return fmt.Sprint(v.v)
}
