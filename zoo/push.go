package zoo

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/t5zoo/t5zoo/catalog"
)

// DefaultChunkSize is the chunk length Push uses when PushOptions.ChunkSize is zero: large
// enough that per-request overhead vanishes, small enough that 8 chunks in flight stay
// within 256 MiB of buffers and that a resumed pull loses little.
const DefaultChunkSize = 16 << 20

// RequiredFiles are the files a model directory must have to be pushed.
func RequiredFiles() []string { return []string{"config.json", "model.safetensors", "spiece.model"} }

// PushFiles returns the names of the files Push uploads from a model directory; others are
// skipped with a warning (pytorch_model.bin, flax or TF weights, dot files, directories).
func PushFiles() []string {
	return []string{
		"config.json", "model.safetensors", "spiece.model", "t5zoo.json",
		"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
		"added_tokens.json", "README.md", "LICENSE",
	}
}

// PushOptions configures Push; the zero value works.
type PushOptions struct {
	// ChunkSize is the length of the chunks files are cut into; 0 means DefaultChunkSize.
	// It must not exceed MaxChunkLength.
	ChunkSize int64
	// Concurrency is the number of chunks hashed, compressed and uploaded at once (each
	// holds up to two chunk-sized buffers); 0 means DefaultConcurrency.
	Concurrency int
	// Validate, if not nil, is called after the built-in checks (config.json parses as a
	// T5 config, the required files exist) to check more: cmd/t5zoo checks that the
	// safetensors header agrees with the config.
	Validate func(ctx context.Context, dir string) error
	// Progress, if not nil, receives per-file progress.
	Progress func(Progress)
	// Logger receives warnings (skipped files, retries); nil discards.
	Logger *slog.Logger
	// Retry is the policy for transient failures; the zero value is the default policy.
	Retry RetryPolicy
	// Catalog, if not nil, is the catalog of shapes: a model pushed under a shape name
	// (t5-efficient-...) must have that shape in its config.json — the published config for
	// a published name, the name grammar's for another — or the push fails with
	// ErrInvalidModel naming the differences. nil: no check. cmd/t5zoo passes the embedded
	// catalog.
	Catalog *catalog.Catalog

	encoding encoding // zero: defaultEncoding(); set by the benchmarks that chose it
}

// PushResult says what Push stored.
type PushResult struct {
	Manifest       *Manifest
	Digest         Digest // of the manifest's bytes
	ChunksUploaded int    // blobs written
	ChunksPresent  int    // blobs the store already had (or that repeat within the model)
	BytesUploaded  int64  // stored (compressed) bytes written
}

// Push uploads the model directory dir as ref: it validates the directory, cuts each file of
// PushFiles into chunks, uploads each chunk the store lacks (compressed), in parallel, and
// writes the manifest last, so that a reader never sees a manifest whose blobs are missing.
func Push(ctx context.Context, store Store, dir string, ref Ref, opts PushOptions) (*PushResult, error) {
	res, err := push(ctx, store, dir, ref, opts)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	return res, nil
}

// ValidateModelDir runs Push's built-in checks on dir: config.json parses as a T5 config
// (catalog.ParseHFConfig) and the RequiredFiles are regular files.
func ValidateModelDir(dir string) error {
	for _, name := range RequiredFiles() {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("%w %s: %w", ErrInvalidModel, dir, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%w %s: %s is not a regular file", ErrInvalidModel, dir, name)
		}
	}
	data, err := readFileLimit(filepath.Join(dir, "config.json"), 1<<20)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrInvalidModel, dir, err)
	}
	if _, err := catalog.ParseHFConfig(data); err != nil {
		return fmt.Errorf("%w %s: %w", ErrInvalidModel, dir, err)
	}
	return nil
}

func push(ctx context.Context, store Store, dir string, ref Ref, opts PushOptions) (*PushResult, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.ChunkSize > MaxChunkLength {
		return nil, fmt.Errorf("chunk size %d exceeds %d", opts.ChunkSize, MaxChunkLength)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	log := opts.Logger.With("ref", ref.String())
	if err := ValidateModelDir(dir); err != nil {
		return nil, err
	}
	if err := CheckCatalogShape(opts.Catalog, dir, ref); err != nil {
		return nil, err
	}
	if opts.Validate != nil {
		if err := opts.Validate(ctx, dir); err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrInvalidModel, dir, err)
		}
	}
	names, err := selectFiles(dir, log)
	if err != nil {
		return nil, err
	}
	p := &pushJob{store: store, opts: opts, log: log, seen: map[Digest]bool{}}
	if p.codec, err = newCodec(cmp.Or(opts.encoding, defaultEncoding()), opts.Concurrency); err != nil {
		return nil, err
	}
	p.bufs = make(chan []byte, opts.Concurrency+1)
	for range opts.Concurrency + 1 {
		p.bufs <- nil // allocated on first use
	}
	var files []File
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: name, Size: fi.Size()})
	}
	p.progress = newProgressReporter(opts.Progress, files)
	p.progress.start()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency)
	for i := range files {
		if err := p.pushFile(gctx, g, filepath.Join(dir, files[i].Path), &files[i]); err != nil {
			// A worker's failure cancels gctx; report that failure, not the cancellation.
			return nil, cmp.Or(g.Wait(), err)
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	m := &Manifest{
		SchemaVersion: ManifestSchemaVersion,
		MediaType:     ManifestMediaType,
		Name:          ref.Name,
		Tag:           ref.Tag,
		Created:       time.Now().UTC().Truncate(time.Second),
		Files:         files,
	}
	data, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if err := opts.Retry.do(ctx, log, "put manifest", func() error { return store.PutManifest(ctx, ref, data) }); err != nil {
		return nil, err
	}
	res := &PushResult{Manifest: m, Digest: DigestOf(data), ChunksUploaded: int(p.uploaded.Load()),
		ChunksPresent: int(p.present.Load()), BytesUploaded: p.bytes.Load()}
	log.Info("pushed", "files", len(files), "chunks_uploaded", res.ChunksUploaded, "chunks_present", res.ChunksPresent)
	return res, nil
}

// selectFiles returns the pushable files of dir, sorted, warning about the rest.
func selectFiles(dir string, log *slog.Logger) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	var names []string
	allowed := PushFiles()
	for _, e := range entries {
		name := e.Name()
		if !slices.Contains(allowed, name) {
			log.Warn("skipping a file that is not part of a model", "file", name)
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, name)) // follows links, as in HF's cache
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			log.Warn("skipping a non-regular file", "file", name)
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// pushJob is one push.
type pushJob struct {
	store    Store
	opts     PushOptions
	log      *slog.Logger
	codec    *codec
	progress *progressReporter
	bufs     chan []byte // chunk buffers; bounds memory to Concurrency+1 chunks read ahead
	encBufs  sync.Pool   // *[]byte, compressed chunks

	mu       sync.Mutex
	seen     map[Digest]bool // blobs handled by this push, uploaded or found
	uploaded atomic.Int64
	present  atomic.Int64
	bytes    atomic.Int64
}

// pushFile reads path chunk by chunk (hashing the whole file on the way, in order) and hands
// each chunk to the group. It fills in f's digest now and f's chunks by the time the group's
// Wait returns.
func (p *pushJob) pushFile(ctx context.Context, g *errgroup.Group, path string, f *File) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	before, err := in.Stat()
	if err != nil {
		return err
	}
	whole := sha256.New()
	n := (f.Size + p.opts.ChunkSize - 1) / p.opts.ChunkSize
	f.Chunks = make([]Chunk, n)
	for i := range f.Chunks {
		off := int64(i) * p.opts.ChunkSize
		length := min(p.opts.ChunkSize, f.Size-off)
		var buf []byte
		select {
		case buf = <-p.bufs:
		case <-ctx.Done():
			return ctx.Err()
		}
		if int64(cap(buf)) < p.opts.ChunkSize {
			buf = make([]byte, p.opts.ChunkSize)
		}
		buf = buf[:length]
		if _, err := io.ReadFull(in, buf); err != nil {
			p.bufs <- buf
			return fmt.Errorf("read %s: %w", path, err)
		}
		whole.Write(buf)
		g.Go(func() error {
			defer func() { p.bufs <- buf }()
			d := DigestOf(buf)
			f.Chunks[i] = Chunk{Digest: d, Offset: off, Length: length}
			if err := p.pushChunk(ctx, d, buf); err != nil {
				return fmt.Errorf("%s chunk at offset %d: %w", f.Path, off, err)
			}
			p.progress.add(f.Path, length)
			return nil
		})
	}
	after, err := os.Stat(path)
	if err != nil {
		return err
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return fmt.Errorf("%s changed while it was being pushed", path)
	}
	f.Digest = digestFromHash(whole)
	return nil
}

// pushChunk uploads one chunk unless the store has it.
func (p *pushJob) pushChunk(ctx context.Context, d Digest, raw []byte) error {
	p.mu.Lock()
	dup := p.seen[d]
	p.seen[d] = true
	p.mu.Unlock()
	if dup {
		p.present.Add(1)
		return nil
	}
	err := p.opts.Retry.do(ctx, p.log, "stat blob "+d.Short(), func() error {
		_, err := p.store.StatBlob(ctx, d)
		return err
	})
	if err == nil {
		p.present.Add(1)
		return nil
	}
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	encp, _ := p.encBufs.Get().(*[]byte)
	if encp == nil {
		encp = new([]byte)
	}
	defer p.encBufs.Put(encp)
	enc := p.codec.encode(*encp, raw)
	*encp = enc
	err = p.opts.Retry.do(ctx, p.log, "put blob "+d.Short(), func() error {
		return p.store.PutBlob(ctx, d, bytes.NewReader(enc), int64(len(enc)))
	})
	if err != nil {
		return err
	}
	p.uploaded.Add(1)
	p.bytes.Add(int64(len(enc)))
	return nil
}
