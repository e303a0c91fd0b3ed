package pytorch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
)

// The unpickler below is a data-only pickle machine: it builds values from the opcodes
// torch.save emits for a state dict and resolves GLOBAL/STACK_GLOBAL against an allowlist
// instead of importing anything. Calls (REDUCE) are evaluated only for the allowed callables,
// each by Go code that builds plain data; everything else is refused. Opcode reference:
// CPython Lib/pickletools.py.

// Limits on what one pickle may build; a state dict of the largest T5 has ~1,000 entries and
// its pickle is a few hundred kB, about 25 values per entry. maxValues bounds everything the
// machine creates (each value is pushed once), so a pickle of one-byte opcodes cannot turn
// 64 MiB into a gigabyte of interface slots: 2^22 values (64 MiB of slots) is ~160k tensors.
const (
	maxPickleBytes = 64 << 20
	maxStackDepth  = 1 << 16
	maxMemo        = 1 << 22
	maxContainer   = 1 << 22
	maxValues      = 1 << 22
)

// global is a resolved GLOBAL: a callable or type the pickle names.
type global struct{ module, name string }

func (g global) String() string { return g.module + "." + g.name }

// tuple distinguishes pickle tuples from lists.
type tuple []any

// dict keeps insertion order, as a state dict's OrderedDict does.
type dict struct {
	keys  []any
	vals  []any
	index map[any]int // keys are strings, ints, bools or nil: all comparable
}

func (d *dict) set(k, v any) error {
	if i, ok := d.index[k]; ok {
		d.vals[i] = v
		return nil
	}
	if len(d.keys) >= maxContainer {
		return errors.New("dictionary too large")
	}
	if d.index == nil {
		d.index = map[any]int{}
	}
	d.index[k] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

type list struct{ items []any }

// mark is the stack sentinel of MARK.
type mark struct{}

// persistentID is the argument of BINPERSID: torch stores tensor storages out of band and
// references them as ('storage', storage_type, key, location, numel).
type persistentID struct{ v any }

// machine runs one pickle.
type machine struct {
	data    []byte
	pos     int
	stack   []any
	pushes  int // values created so far, bounded by maxValues
	memo    map[int64]any
	persist func(tuple) (any, error)
	call    func(fn global, args tuple) (any, error)
	allowed func(global) bool
}

func (m *machine) errorf(format string, args ...any) error {
	return fmt.Errorf("pickle at byte %d: %s", m.pos, fmt.Sprintf(format, args...))
}

func (m *machine) read(n int) ([]byte, error) {
	if n < 0 || n > len(m.data)-m.pos {
		return nil, m.errorf("truncated: want %d bytes, %d left", n, len(m.data)-m.pos)
	}
	b := m.data[m.pos : m.pos+n]
	m.pos += n
	return b, nil
}

func (m *machine) readLine() (string, error) {
	for i := m.pos; i < len(m.data); i++ {
		if m.data[i] == '\n' {
			s := string(m.data[m.pos:i])
			m.pos = i + 1
			return s, nil
		}
	}
	return "", m.errorf("truncated: unterminated line")
}

func (m *machine) uint(n int) (uint64, error) {
	b, err := m.read(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (m *machine) push(v any) error {
	if len(m.stack) >= maxStackDepth {
		return m.errorf("stack deeper than %d", maxStackDepth)
	}
	if m.pushes++; m.pushes > maxValues {
		return m.errorf("more than %d values: not a state dict", maxValues)
	}
	m.stack = append(m.stack, v)
	return nil
}

func (m *machine) pop() (any, error) {
	if len(m.stack) == 0 {
		return nil, m.errorf("stack underflow")
	}
	v := m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
	if _, ok := v.(mark); ok {
		return nil, m.errorf("unexpected MARK on the stack")
	}
	return v, nil
}

func (m *machine) top() (any, error) {
	if len(m.stack) == 0 {
		return nil, m.errorf("stack underflow")
	}
	return m.stack[len(m.stack)-1], nil
}

// popMark pops everything above the topmost MARK, and the MARK.
func (m *machine) popMark() ([]any, error) {
	for i := len(m.stack) - 1; i >= 0; i-- {
		if _, ok := m.stack[i].(mark); ok {
			items := append([]any(nil), m.stack[i+1:]...)
			m.stack = m.stack[:i]
			return items, nil
		}
	}
	return nil, m.errorf("no MARK on the stack")
}

func (m *machine) memoPut(i int64) error {
	if i < 0 || len(m.memo) >= maxMemo {
		return m.errorf("memo index %d out of range", i)
	}
	v, err := m.top()
	if err != nil {
		return err
	}
	m.memo[i] = v
	return nil
}

func (m *machine) memoGet(i int64) error {
	v, ok := m.memo[i]
	if !ok {
		return m.errorf("memo %d not set", i)
	}
	return m.push(v)
}

func (m *machine) global(module, name string) error {
	g := global{module, name}
	if !m.allowed(g) {
		return m.errorf("global %s is not allowed: only state-dict tensors are accepted, no code is run", g)
	}
	return m.push(g)
}

// run executes the pickle and returns the value STOP leaves.
func (m *machine) run() (any, error) {
	for {
		opb, err := m.read(1)
		if err != nil {
			return nil, err
		}
		if err := m.step(opb[0]); err != nil {
			if errors.Is(err, errStop) {
				v, err := m.pop()
				if err != nil {
					return nil, err
				}
				return v, nil
			}
			return nil, err
		}
	}
}

var errStop = errors.New("stop") // a sentinel between step and run, not state

func (m *machine) step(op byte) error {
	switch op {
	case 0x80: // PROTO
		v, err := m.uint(1)
		if err != nil {
			return err
		}
		if v > 5 {
			return m.errorf("pickle protocol %d not supported", v)
		}
	case 0x95: // FRAME: a length hint only
		_, err := m.uint(8)
		return err
	case '.': // STOP
		return errStop
	case '(': // MARK
		return m.push(mark{})
	case '}': // EMPTY_DICT
		return m.push(&dict{})
	case ']': // EMPTY_LIST
		return m.push(&list{})
	case ')': // EMPTY_TUPLE
		return m.push(tuple{})
	case 'N': // NONE
		return m.push(nil)
	case 0x88: // NEWTRUE
		return m.push(true)
	case 0x89: // NEWFALSE
		return m.push(false)
	case 'K': // BININT1
		v, err := m.uint(1)
		if err != nil {
			return err
		}
		return m.push(int64(v))
	case 'M': // BININT2
		v, err := m.uint(2)
		if err != nil {
			return err
		}
		return m.push(int64(v))
	case 'J': // BININT
		v, err := m.uint(4)
		if err != nil {
			return err
		}
		return m.push(int64(int32(uint32(v))))
	case 0x8a: // LONG1
		n, err := m.uint(1)
		if err != nil {
			return err
		}
		b, err := m.read(int(n))
		if err != nil {
			return err
		}
		v, err := decodeLong(b)
		if err != nil {
			return m.errorf("%v", err)
		}
		return m.push(v)
	case 'G': // BINFLOAT, big-endian
		b, err := m.read(8)
		if err != nil {
			return err
		}
		return m.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case 'X', 0x8c, 0x8d: // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
		size := 4
		switch op {
		case 0x8c:
			size = 1
		case 0x8d:
			size = 8
		}
		n, err := m.uint(size)
		if err != nil {
			return err
		}
		if n > uint64(len(m.data)) {
			return m.errorf("string of %d bytes past the end", n)
		}
		b, err := m.read(int(n))
		if err != nil {
			return err
		}
		return m.push(string(b))
	case 'c': // GLOBAL module\nname\n
		mod, err := m.readLine()
		if err != nil {
			return err
		}
		name, err := m.readLine()
		if err != nil {
			return err
		}
		return m.global(mod, name)
	case 0x93: // STACK_GLOBAL
		name, err := m.pop()
		if err != nil {
			return err
		}
		mod, err := m.pop()
		if err != nil {
			return err
		}
		ms, ok1 := mod.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return m.errorf("STACK_GLOBAL needs two strings")
		}
		return m.global(ms, ns)
	case 'q': // BINPUT
		i, err := m.uint(1)
		if err != nil {
			return err
		}
		return m.memoPut(int64(i))
	case 'r': // LONG_BINPUT
		i, err := m.uint(4)
		if err != nil {
			return err
		}
		return m.memoPut(int64(i))
	case 0x94: // MEMOIZE
		return m.memoPut(int64(len(m.memo)))
	case 'h': // BINGET
		i, err := m.uint(1)
		if err != nil {
			return err
		}
		return m.memoGet(int64(i))
	case 'j': // LONG_BINGET
		i, err := m.uint(4)
		if err != nil {
			return err
		}
		return m.memoGet(int64(i))
	case 't': // TUPLE
		items, err := m.popMark()
		if err != nil {
			return err
		}
		return m.push(tuple(items))
	case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
		n := int(op - 0x84)
		if len(m.stack) < n {
			return m.errorf("stack underflow")
		}
		items := make(tuple, n)
		for i := n - 1; i >= 0; i-- {
			v, err := m.pop()
			if err != nil {
				return err
			}
			items[i] = v
		}
		return m.push(items)
	case 'a': // APPEND
		v, err := m.pop()
		if err != nil {
			return err
		}
		return m.appendTo([]any{v})
	case 'e': // APPENDS
		items, err := m.popMark()
		if err != nil {
			return err
		}
		return m.appendTo(items)
	case 's': // SETITEM
		v, err := m.pop()
		if err != nil {
			return err
		}
		k, err := m.pop()
		if err != nil {
			return err
		}
		return m.setItems([]any{k, v})
	case 'u': // SETITEMS
		items, err := m.popMark()
		if err != nil {
			return err
		}
		return m.setItems(items)
	case 'Q': // BINPERSID
		pid, err := m.pop()
		if err != nil {
			return err
		}
		t, ok := pid.(tuple)
		if !ok {
			return m.errorf("persistent id is %T, want a tuple", pid)
		}
		v, err := m.persist(t)
		if err != nil {
			return m.errorf("%v", err)
		}
		return m.push(v)
	case 'R': // REDUCE
		args, err := m.pop()
		if err != nil {
			return err
		}
		fn, err := m.pop()
		if err != nil {
			return err
		}
		g, ok1 := fn.(global)
		at, ok2 := args.(tuple)
		if !ok1 || !ok2 {
			return m.errorf("REDUCE of %T with %T", fn, args)
		}
		v, err := m.call(g, at)
		if err != nil {
			return m.errorf("%s: %v", g, err)
		}
		return m.push(v)
	case 'b': // BUILD: torch sets attributes (e.g. _metadata) this way; state is dropped
		if _, err := m.pop(); err != nil {
			return err
		}
		_, err := m.top()
		return err
	default:
		return m.errorf("opcode 0x%02x is not supported in a state dict", op)
	}
	return nil
}

func (m *machine) appendTo(items []any) error {
	v, err := m.top()
	if err != nil {
		return err
	}
	l, ok := v.(*list)
	if !ok {
		return m.errorf("APPEND to %T", v)
	}
	if len(l.items)+len(items) > maxContainer {
		return m.errorf("list too large")
	}
	l.items = append(l.items, items...)
	return nil
}

func (m *machine) setItems(items []any) error {
	if len(items)%2 != 0 {
		return m.errorf("SETITEMS with an odd number of items")
	}
	v, err := m.top()
	if err != nil {
		return err
	}
	d, ok := v.(*dict)
	if !ok {
		return m.errorf("SETITEM on %T", v)
	}
	for i := 0; i < len(items); i += 2 {
		switch items[i].(type) {
		case string, int64, bool, nil:
		default:
			return m.errorf("dictionary key of type %T", items[i])
		}
		if err := d.set(items[i], items[i+1]); err != nil {
			return m.errorf("%v", err)
		}
	}
	return nil
}

// decodeLong reads a little-endian two's-complement integer of LONG1; it must fit int64.
func decodeLong(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	v := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	if !v.IsInt64() {
		return 0, fmt.Errorf("integer of %d bytes out of range", len(b))
	}
	return v.Int64(), nil
}
