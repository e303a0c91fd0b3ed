// Package fetch gets a model by name from wherever it is: the local cache, the registry, or
// — for a published Scale Efficiently shape that the registry lacks — the Hugging Face Hub,
// imported (downloaded, converted with the parity gate, pushed) on first use, as Ollama
// pulls a model the first time it is run. It also holds the import pipeline itself (Import,
// ConvertChecked) and the checks that a directory is a model (CheckDir), so that the CLI
// and the server share one behaviour.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"golang.org/x/sync/singleflight"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/convert/hub"
	"github.com/t5zoo/t5zoo/zoo"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrOffline: the Hub could not be reached (no network, DNS failure, connection
	// refused) for an import by name. The error's message says what to do instead.
	ErrOffline = errors.New("fetch: the Hugging Face Hub could not be reached")
	// ErrParity: a conversion fell below the quality (parity) gate and was not accepted.
	ErrParity = errors.New("fetch: the converted model fails the parity gate")
	// ErrTargetExists: a conversion's target directory is not empty and overwriting was
	// not asked for.
	ErrTargetExists = convert.ErrTargetExists
	// ErrNotModel: a directory that is not a model directory (a required file is missing
	// or does not parse).
	ErrNotModel = errors.New("fetch: not a model directory")
)

// Fetcher gets models by name. Zero-value fields mean: Logger discards; Catalog nil or Hub
// nil → no Hub import; Store nil → the cache only. A Fetcher is safe for concurrent use and
// must not be copied after first use.
type Fetcher struct {
	Cache   *zoo.Cache
	Store   zoo.Store        // the registry
	Catalog *catalog.Catalog // published shapes, for import by name
	Hub     *hub.Client      // the Hugging Face Hub client (convert/hub)
	Logger  *slog.Logger

	// imports makes concurrent imports of one ref in this process share one.
	imports singleflight.Group
}

// Options of one Model call; the zero value pulls from the registry and never imports. The
// import hooks are called only by the call that runs the import, not by concurrent calls
// for the same ref that wait for it.
type Options struct {
	// Pull configures Cache.Pull (Progress, Logger, Concurrency...).
	Pull zoo.PullOptions
	// Import imports a published catalog shape from the Hub when the registry lacks it. Only
	// the tag "latest" is imported by name (as float32, from the repository's main branch):
	// another tag names a variant that Import must be asked for explicitly.
	Import bool
	// OnImport, if not nil, is told when an import starts, with the Hub repository.
	OnImport func(repo string)
	// DownloadProgress, if not nil, receives the Hub download's progress per file; it may be
	// called from several goroutines at once.
	DownloadProgress func(file string, done, total int64)
	// OnConverted, if not nil, receives the imported conversion's t5zoo.json (with its
	// parity verdict) before it is pushed.
	OnConverted func(*convert.Meta)
	// PushProgress and PushLogger are the import's zoo.PushOptions Progress and Logger.
	PushProgress func(zoo.Progress)
	PushLogger   *slog.Logger
	// OnImported, if not nil, is told when the import has been pushed, before the pull.
	OnImported func(*ImportResult)
}

func (f *Fetcher) logger() *slog.Logger {
	if f.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Logger
}

// Model returns the local copy of ref: the cache's, else pulled from the registry, else
// (Options.Import, a published shape) imported from the Hub, pushed to the registry and
// pulled. Errors wrap zoo.ErrNotFound when nothing has it (with, for a published shape, how
// to import it), ErrOffline when the Hub cannot be reached (the message says what to do),
// ErrParity when the imported conversion fails the gate.
func (f *Fetcher) Model(ctx context.Context, ref zoo.Ref, opts Options) (*zoo.LocalModel, error) {
	if f.Cache == nil {
		return nil, fmt.Errorf("fetch %s: no cache", ref)
	}
	lm, err := f.Cache.Model(ref)
	if err == nil {
		return lm, nil
	}
	if !errors.Is(err, zoo.ErrNotFound) {
		return nil, fmt.Errorf("fetch %s: %w", ref, err)
	}
	if f.Store == nil {
		return nil, f.notFound(ref, fmt.Errorf("%s is not in the local cache: %w", ref, err))
	}
	lm, err = f.Cache.Pull(ctx, f.Store, ref, opts.Pull)
	if err == nil {
		return lm, nil
	}
	if !errors.Is(err, zoo.ErrNotFound) || !f.missing(ctx, ref) {
		// A registry that has the manifest but fails otherwise (a missing chunk, no
		// network) is not repaired by an import: say what happened.
		return nil, err
	}
	entry, published := f.published(ref)
	if !opts.Import || !published || f.Hub == nil || ref.Tag != zoo.DefaultTag {
		return nil, f.notFound(ref, err)
	}
	if err := f.importOnce(ctx, ref, entry, opts); err != nil {
		return nil, err
	}
	return f.Cache.Pull(ctx, f.Store, ref, opts.Pull)
}

// missing reports whether the registry lacks ref's manifest, as opposed to failing to give
// one of its chunks.
func (f *Fetcher) missing(ctx context.Context, ref zoo.Ref) bool {
	_, err := f.Store.GetManifest(ctx, ref)
	return errors.Is(err, zoo.ErrNotFound)
}

// published returns ref's catalog entry when it names a published shape.
func (f *Fetcher) published(ref zoo.Ref) (catalog.Entry, bool) {
	if f.Catalog == nil {
		return catalog.Entry{}, false
	}
	e, ok := f.Catalog.Published(ref.Name)
	return e, ok && e.HFRepo != ""
}

// notFound adds to a registry miss, for a published shape, how to import it.
func (f *Fetcher) notFound(ref zoo.Ref, err error) error {
	e, ok := f.published(ref)
	if !ok {
		return err
	}
	if ref.Tag != zoo.DefaultTag {
		return fmt.Errorf("%w\n%s is a published checkpoint; import this variant with `t5zoo import hf %s --as %s` (and --dtype or --quantize)", err, ref.Name, e.HFRepo, ref)
	}
	return fmt.Errorf("%w\n%s is a published checkpoint: import it from the Hugging Face Hub with `t5zoo import hf %s` or `t5zoo pull --import %s`", err, ref.Name, e.HFRepo, ref.Name)
}

// importOnce imports entry as ref unless another caller in this process is already doing so,
// in which case it waits for that import. A waiter whose leader was cancelled (its context,
// not the waiter's) tries again itself.
func (f *Fetcher) importOnce(ctx context.Context, ref zoo.Ref, entry catalog.Entry, opts Options) error {
	for {
		ch := f.imports.DoChan(ref.String(), func() (any, error) {
			// Another process (or an earlier leader) may have pushed it meanwhile.
			if !f.missing(ctx, ref) {
				return nil, nil
			}
			return nil, f.importByName(ctx, ref, entry, opts)
		})
		select {
		case <-ctx.Done():
			return fmt.Errorf("fetch %s: %w", ref, context.Cause(ctx))
		case r := <-ch:
			if r.Err != nil && r.Shared && ctx.Err() == nil && (errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, context.DeadlineExceeded)) {
				continue
			}
			return r.Err
		}
	}
}

// importByName imports a published shape, first checking cheaply that the Hub answers.
func (f *Fetcher) importByName(ctx context.Context, ref zoo.Ref, entry catalog.Entry, opts Options) error {
	if err := f.reachable(ctx, entry.HFRepo); err != nil {
		return f.offline(ref, entry, err)
	}
	if opts.OnImport != nil {
		opts.OnImport(entry.HFRepo)
	}
	f.logger().Info("importing from the Hub", "ref", ref.String(), "repo", entry.HFRepo)
	res, err := f.Import(ctx, ImportOptions{
		Repo: entry.HFRepo, Revision: "main", Ref: ref, DType: catalog.F32,
		DownloadProgress: opts.DownloadProgress, OnConverted: opts.OnConverted,
		PushProgress: opts.PushProgress, PushLogger: opts.PushLogger,
	})
	if err != nil {
		if isNetwork(err) {
			return f.offline(ref, entry, err)
		}
		return err
	}
	f.logger().Info("imported", "ref", ref.String(), "repo", entry.HFRepo, "commit", res.Commit, "digest", res.Push.Digest.String())
	if opts.OnImported != nil {
		opts.OnImported(res)
	}
	return nil
}

// reachable lists repo's files once, without retries: on a machine without network the
// import fails at once instead of after the client's back-off.
func (f *Fetcher) reachable(ctx context.Context, repo string) error {
	probe := *f.Hub
	probe.MaxAttempts = 1
	_, err := probe.Repo(ctx, repo, "main")
	if err != nil && isNetwork(err) {
		return err
	}
	// Any other answer (a listing, a 404, a 401) came from a Hub: Import reports it.
	return nil
}

// isNetwork reports whether err is a failure to reach the Hub at all (dial, DNS), not an
// answer from it or a cancellation.
func isNetwork(err error) bool {
	var se *hub.StatusError
	if errors.As(err, &se) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns)
}

// offline is ErrOffline with the commands that get the model without this machine reaching
// the Hub.
func (f *Fetcher) offline(ref zoo.Ref, entry catalog.Entry, cause error) error {
	endpoint := f.Hub.Endpoint
	if endpoint == "" {
		endpoint = hub.DefaultEndpoint
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s is not in the registry %s, and importing it from %s failed", ref, describe(f.Store), endpoint)
	fmt.Fprintf(&b, "\nTo get it without reaching the Hub from this machine, either:")
	fmt.Fprintf(&b, "\n  - on a machine with network, `t5zoo import hf %s` into a registry this machine can read (T5ZOO_REGISTRY=s3://BUCKET/PREFIX, a shared directory, or http://HOST:PORT of a t5zoo serve), then set T5ZOO_REGISTRY here to it; or", entry.HFRepo)
	fmt.Fprintf(&b, "\n  - with a local copy of the checkpoint (from %s), `t5zoo convert ./COPY ./%s` and `t5zoo push ./%s %s`.", entry.HFRepo, ref.Name, ref.Name, ref.Name)
	return fmt.Errorf("%w: %s\ncause: %w", ErrOffline, b.String(), cause)
}

// describe names a store for messages.
func describe(s zoo.Store) string {
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", s)
}
