// Package zootest holds the conformance suite that every zoo.Store must pass — run against
// the local store and a real MinIO by zoo's own tests, so that both give the same results —
// and a counting Store wrapper for tests that need to see the requests.
package zootest

import (
	"context"
	"io"
	"sync"

	"github.com/t5zoo/t5zoo/zoo"
)

// CountingStore wraps a Store, counting blob requests and optionally intercepting GETs.
type CountingStore struct {
	zoo.Store

	// BeforeGet, if not nil, runs before each GetBlob with the 1-based count of GETs so far;
	// an error it returns is the GET's error.
	BeforeGet func(ctx context.Context, n int) error

	mu      sync.Mutex
	gets    map[zoo.Digest]int
	puts    map[zoo.Digest]int
	nGets   int
	nPuts   int
	nStats  int
	putSize int64
}

var _ zoo.Store = (*CountingStore)(nil)

// NewCountingStore wraps s.
func NewCountingStore(s zoo.Store) *CountingStore {
	return &CountingStore{Store: s, gets: map[zoo.Digest]int{}, puts: map[zoo.Digest]int{}}
}

// GetBlob implements zoo.Store.
func (c *CountingStore) GetBlob(ctx context.Context, d zoo.Digest) (io.ReadCloser, error) {
	c.mu.Lock()
	c.nGets++
	c.gets[d]++
	n := c.nGets
	c.mu.Unlock()
	if c.BeforeGet != nil {
		if err := c.BeforeGet(ctx, n); err != nil {
			return nil, err
		}
	}
	return c.Store.GetBlob(ctx, d)
}

// PutBlob implements zoo.Store.
func (c *CountingStore) PutBlob(ctx context.Context, d zoo.Digest, r io.Reader, size int64) error {
	c.mu.Lock()
	c.nPuts++
	c.puts[d]++
	c.putSize += size
	c.mu.Unlock()
	return c.Store.PutBlob(ctx, d, r, size)
}

// StatBlob implements zoo.Store.
func (c *CountingStore) StatBlob(ctx context.Context, d zoo.Digest) (int64, error) {
	c.mu.Lock()
	c.nStats++
	c.mu.Unlock()
	return c.Store.StatBlob(ctx, d)
}

// Gets is the number of GetBlob calls so far.
func (c *CountingStore) Gets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nGets
}

// GetsOf is the number of GetBlob calls for d.
func (c *CountingStore) GetsOf(d zoo.Digest) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets[d]
}

// Puts is the number of PutBlob calls so far.
func (c *CountingStore) Puts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nPuts
}

// PutsOf is the number of PutBlob calls for d.
func (c *CountingStore) PutsOf(d zoo.Digest) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.puts[d]
}

// Reset zeroes the counters.
func (c *CountingStore) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets, c.puts = map[zoo.Digest]int{}, map[zoo.Digest]int{}
	c.nGets, c.nPuts, c.nStats, c.putSize = 0, 0, 0, 0
}
