package zoo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sync/errgroup"
)

// pullJob is one pull, under ref's lock and the lock of the manifest's partial directory.
type pullJob struct {
	cache    *Cache
	store    Store
	ref      Ref
	m        *Manifest
	digest   Digest
	data     []byte // the manifest's bytes
	opts     PullOptions
	log      *slog.Logger
	progress *progressReporter
	codec    *codec

	dir     string // partial/<hex>
	files   string // partial/<hex>/files
	journal *journal
	hashes  map[string]*fileHash // of the files assembled here (not linked or copied whole)
}

// chunkRef is one chunk of one file of the manifest.
type chunkRef struct {
	file  File
	index int // in file.Chunks
	chunk Chunk
}

func (j *pullJob) run(ctx context.Context) (*LocalModel, error) {
	j.codec = &codec{} // decoding only
	j.dir = j.cache.path(partialDirPathSpec{j.digest})
	j.files = filepath.Join(j.dir, "files")
	claims, err := readJournal(filepath.Join(j.dir, "journal"))
	if err != nil {
		return nil, err
	}
	cands := j.reuseCandidates(ctx)
	// Before anything is written: a pull that cannot fit fails now, not at 99%. Files with
	// a local copy are counted as reused.
	var need int64
	for _, f := range j.m.Files {
		if len(cands[f.Path]) > 0 {
			continue
		}
		for _, ch := range f.Chunks {
			if !claims[journalEntry{f.Path, ch.Offset, ch.Digest}] {
				need += ch.Length
			}
		}
	}
	if err := j.checkSpace(need); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(j.files, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(j.dir, "ref"), []byte(j.ref.String()+"\n"), 0o644); err != nil {
		return nil, err
	}
	if j.journal, err = openJournal(filepath.Join(j.dir, "journal")); err != nil {
		return nil, err
	}
	defer j.journal.Close()
	j.progress.start()

	reused, salvage, err := j.reuseLocal(ctx, cands)
	if err != nil {
		return nil, err
	}
	handles, err := j.openFiles(reused)
	defer func() {
		for _, f := range handles {
			f.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	var claimed, unclaimed []chunkRef
	for _, f := range j.m.Files {
		if reused[f.Path] {
			continue
		}
		for i, ch := range f.Chunks {
			cr := chunkRef{f, i, ch}
			if claims[journalEntry{f.Path, ch.Offset, ch.Digest}] {
				claimed = append(claimed, cr)
			} else {
				unclaimed = append(unclaimed, cr)
			}
		}
	}
	// Journal entries were appended without syncing the data they describe, so each is
	// checked against the disk: what a crash lost is fetched again.
	bad, err := j.recheck(ctx, handles, claimed)
	if err != nil {
		return nil, err
	}
	if len(claimed) > 0 {
		j.log.Info("resuming", "chunks_on_disk", len(claimed)-len(bad), "chunks_to_fetch", len(unclaimed)+len(bad))
	}
	todo, err := j.salvage(ctx, handles, salvage, append(bad, unclaimed...))
	if err != nil {
		return nil, err
	}
	if err := j.fetchAll(ctx, handles, todo); err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadManifest) {
			// The registry's copy is broken: nothing here will become a model.
			os.RemoveAll(j.dir)
		}
		return nil, err
	}
	for _, f := range j.m.Files {
		if fh := j.hashes[f.Path]; fh != nil {
			if err := fh.check(); err != nil {
				if errors.Is(err, ErrCorrupt) {
					os.RemoveAll(j.dir) // the manifest contradicts its own chunks
				}
				return nil, err
			}
		}
	}
	for path, f := range handles {
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("sync %s: %w", path, err)
		}
	}
	return j.install()
}

// openFiles opens (creating at full size) every file not reused, each with its fileHash.
func (j *pullJob) openFiles(reused map[string]bool) (map[string]*os.File, error) {
	handles := map[string]*os.File{}
	j.hashes = map[string]*fileHash{}
	for _, f := range j.m.Files {
		if reused[f.Path] {
			continue
		}
		p := filepath.Join(j.files, f.Path)
		h, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return handles, err
		}
		handles[f.Path] = h
		j.hashes[f.Path] = newFileHash(f, h)
		if fi, err := h.Stat(); err == nil && fi.Size() != f.Size {
			if err := h.Truncate(f.Size); err != nil {
				return handles, fmt.Errorf("allocate %s: %w", p, err)
			}
		}
	}
	return handles, nil
}

// landed records a chunk in place and verified: in the journal unless it was there already,
// and in its file's hash.
func (j *pullJob) landed(ctx context.Context, cr chunkRef, journaled bool) error {
	if !journaled {
		if err := j.journal.add(journalEntry{cr.file.Path, cr.chunk.Offset, cr.chunk.Digest}); err != nil {
			return err
		}
	}
	return j.hashes[cr.file.Path].chunkDone(ctx, cr.index)
}

// recheck hashes the journaled chunks on disk and returns those that do not match.
func (j *pullJob) recheck(ctx context.Context, handles map[string]*os.File, claimed []chunkRef) ([]chunkRef, error) {
	var mu sync.Mutex
	var bad []chunkRef
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(j.opts.Concurrency)
	for _, cr := range claimed {
		g.Go(func() error {
			r := ctxReader{ctx, io.NewSectionReader(handles[cr.file.Path], cr.chunk.Offset, cr.chunk.Length)}
			if _, err := io.Copy(io.Discard, newVerifyReader(r, cr.chunk.Digest, cr.chunk.Length)); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				j.log.Info("journaled chunk is not on disk; fetching it again", "file", cr.file.Path, "offset", cr.chunk.Offset, "err", err)
				mu.Lock()
				bad = append(bad, cr)
				mu.Unlock()
				return nil
			}
			j.progress.add(cr.file.Path, cr.chunk.Length)
			return j.landed(ctx, cr, true)
		})
	}
	return bad, g.Wait()
}

// salvage copies, of the chunks in todo, those that a damaged local copy holds intact, and
// returns the rest, to fetch.
func (j *pullJob) salvage(ctx context.Context, handles map[string]*os.File, sources map[string]salvageSource, todo []chunkRef) ([]chunkRef, error) {
	if len(sources) == 0 {
		return todo, nil
	}
	opened := map[string]*os.File{}
	defer func() {
		for _, f := range opened {
			f.Close()
		}
	}()
	var rest []chunkRef
	for _, cr := range todo {
		src, ok := sources[cr.file.Path]
		if !ok || !src.good[cr.index] {
			rest = append(rest, cr)
			continue
		}
		in := opened[src.path]
		if in == nil {
			var err error
			if in, err = os.Open(src.path); err != nil {
				rest = append(rest, cr)
				continue
			}
			opened[src.path] = in
		}
		if err := copyChunk(ctx, in, handles[cr.file.Path], cr.chunk); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rest = append(rest, cr) // changed since it was checked
			continue
		}
		j.progress.add(cr.file.Path, cr.chunk.Length)
		if err := j.landed(ctx, cr, false); err != nil {
			return nil, err
		}
	}
	return rest, nil
}

// checkSpace fails early, with ENOSPC, when need more bytes cannot fit.
func (j *pullJob) checkSpace(need int64) error {
	free, err := j.cache.diskFree(j.cache.root)
	if err != nil || need == 0 {
		return nil // unknown: the writes will tell
	}
	const margin = 64 << 20 // room for manifests, journals and the file system's own needs
	if uint64(need)+margin > free {
		return fmt.Errorf("not enough disk space in %s: need %s more, %s free: %w",
			j.cache.root, formatBytes(need+margin), formatBytes(int64(free)), syscall.ENOSPC)
	}
	return nil
}

// fetchAll downloads the chunks in parallel.
func (j *pullJob) fetchAll(parent context.Context, handles map[string]*os.File, todo []chunkRef) error {
	g, ctx := errgroup.WithContext(parent)
	g.SetLimit(j.opts.Concurrency)
	for _, cr := range todo {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			what := fmt.Sprintf("%s chunk at offset %d (blob %s)", cr.file.Path, cr.chunk.Offset, cr.chunk.Digest.Short())
			err := j.opts.Retry.do(ctx, j.log, what, func() error {
				return j.fetchChunk(ctx, handles[cr.file.Path], cr)
			})
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					return fmt.Errorf("%s: blob missing from the registry %s: %w", what, describe(j.store), err)
				}
				return fmt.Errorf("%s: %w", what, err)
			}
			j.progress.fetched(cr.file.Path, cr.chunk.Length)
			return j.landed(ctx, cr, false)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return parent.Err()
}
