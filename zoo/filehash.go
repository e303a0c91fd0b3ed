package zoo

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"sync"
)

// fileHash computes the sha256 of a file being assembled while its chunks land in any order:
// whichever goroutine completes the next chunk in line reads it back (from the page cache,
// as a rule) and hashes it, then every completed chunk after it, so that the digest of the
// whole file is known when the last chunk lands instead of costing a second pass. Chunk
// digests prove each piece; this proves that the pieces make the file the manifest names
// (found: a manifest with right chunks and a wrong file digest produced a model).
type fileHash struct {
	file File
	r    io.ReaderAt

	mu   sync.Mutex
	h    hash.Hash // written only by the goroutine that set busy
	done []bool
	next int  // chunks hashed so far
	busy bool // a goroutine is hashing
	err  error
}

func newFileHash(f File, r io.ReaderAt) *fileHash {
	return &fileHash{file: f, r: r, h: sha256.New(), done: make([]bool, len(f.Chunks))}
}

// chunkDone records that chunk i is in place and verified, and hashes what is now in line.
func (fh *fileHash) chunkDone(ctx context.Context, i int) error {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	fh.done[i] = true
	if fh.busy || fh.err != nil {
		return fh.err // the goroutine hashing will reach chunk i
	}
	fh.busy = true
	for fh.next < len(fh.done) && fh.done[fh.next] {
		ch := fh.file.Chunks[fh.next]
		fh.mu.Unlock()
		_, err := io.Copy(fh.h, ctxReader{ctx, io.NewSectionReader(fh.r, ch.Offset, ch.Length)})
		fh.mu.Lock()
		if err != nil {
			fh.err = permanent(fmt.Errorf("hash %s at offset %d: %w", fh.file.Path, ch.Offset, err))
			break
		}
		fh.next++
	}
	fh.busy = false
	return fh.err
}

// check reports whether the whole file, every chunk hashed, has the manifest's digest: a
// *DigestError (ErrCorrupt) when not.
func (fh *fileHash) check() error {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	if fh.err != nil {
		return fh.err
	}
	if fh.next != len(fh.done) {
		return fmt.Errorf("internal error: %s: %d of %d chunks hashed", fh.file.Path, fh.next, len(fh.done))
	}
	if got := digestFromHash(fh.h); got != fh.file.Digest {
		return fmt.Errorf("%s: the chunks are right but the whole file is not: %w", fh.file.Path,
			&DigestError{Want: fh.file.Digest, Got: got, Size: fh.file.Size})
	}
	return nil
}
