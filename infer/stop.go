package infer

import (
	"sync"
	"sync/atomic"
)

// StopSet names the sequences a caller has ended early, such as a completion whose text
// reached one of its stop strings: the Batcher ends each before its next step, with the
// tokens it has. It is safe for concurrent use; the zero value is empty.
type StopSet struct {
	mu  sync.Mutex
	set map[[2]int]struct{}
	// gen counts Stop calls, so that the Batcher looks at the set only when it changed.
	gen atomic.Uint64
}

// Stop ends sequence seq (the sample's index; 0 for greedy decoding) of input (its index in
// the Generate call) before its next step. Beam search ignores it: its beams are reordered
// until the end, so no one beam can be ended on its own.
func (s *StopSet) Stop(input, seq int) {
	s.mu.Lock()
	if s.set == nil {
		s.set = map[[2]int]struct{}{}
	}
	s.set[[2]int{input, seq}] = struct{}{}
	s.mu.Unlock()
	s.gen.Add(1)
}

// stopped reports whether sequence seq of input was stopped.
func (s *StopSet) stopped(input, seq int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.set[[2]int{input, seq}]
	return ok
}

// GenerateHooks are the optional callbacks of Batcher.GenerateWith.
type GenerateHooks struct {
	// Token, if not nil, receives each token as it is decided (see Token), on the Batcher's
	// goroutine: it must not block, and it is not called after GenerateWith returns.
	Token func(Token)
	// Stop, if not nil, is read before every step: the sequences it names end there, with
	// the tokens they have (Hypothesis.Stopped).
	Stop *StopSet
}
