package fetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/convert/hub"
	"github.com/t5zoo/t5zoo/zoo"
)

// ImportOptions are the settings of one Hub import.
type ImportOptions struct {
	// Repo is the Hub repository id, namespace/name.
	Repo string
	// Revision is a branch, tag or commit; "" means "main".
	Revision string
	// Ref is the registry name the model is pushed as.
	Ref zoo.Ref
	// DType is the storage type of the conversion ("" means float32; catalog.Int8 quantizes).
	DType catalog.DType
	// Force pushes a conversion that fails the parity gate (marked so in t5zoo.json).
	Force bool
	// KeepDownload keeps the downloaded files after a successful import. They are always
	// kept after a failure, so that the next import resumes the download.
	KeepDownload bool
	// DownloadProgress, if not nil, receives the download's progress per file; it may be
	// called from several goroutines at once.
	DownloadProgress func(file string, done, total int64)
	// OnConverted, if not nil, receives the conversion's t5zoo.json (with its parity
	// verdict) before anything is pushed, whether or not it passed.
	OnConverted func(*convert.Meta)
	// PushProgress and PushLogger are the push's zoo.PushOptions Progress and Logger.
	PushProgress func(zoo.Progress)
	PushLogger   *slog.Logger
}

// ImportResult says what Import did.
type ImportResult struct {
	Ref            zoo.Ref
	Repo, Revision string
	// Commit is the commit the revision resolved to; every file was downloaded at it.
	Commit string
	// Meta is the pushed model's t5zoo.json, with the parity verdict.
	Meta *convert.Meta
	Push *zoo.PushResult
}

// DownloadDir is where Import downloads repo at revision: a directory per revision under
// the cache's downloads/hf, so that an interrupted import resumes. The revision is one path
// element (escaped as in a URL), so no input can name a directory outside the cache.
func (f *Fetcher) DownloadDir(repo, revision string) (string, error) {
	parts := strings.Split(repo, "/")
	if len(parts) > 2 {
		return "", fmt.Errorf("repository %q: want namespace/name", repo)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, `\`) {
			return "", fmt.Errorf("repository %q: want namespace/name", repo)
		}
	}
	rev := url.PathEscape(revision)
	if rev == "" || rev == "." || rev == ".." {
		return "", fmt.Errorf("revision %q: want a branch, tag or commit", revision)
	}
	return filepath.Join(append(append([]string{f.Cache.Root(), "downloads", "hf"}, parts...), rev)...), nil
}

// Import downloads repo@revision from the Hub, converts it with the parity gate and pushes it
// as ref. Nothing is pushed when the conversion fails the gate (unless Force): the error
// wraps ErrParity. Under a published catalog name the checkpoint must have that shape.
func (f *Fetcher) Import(ctx context.Context, o ImportOptions) (*ImportResult, error) {
	res, err := f.doImport(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", o.Repo, err)
	}
	return res, nil
}

func (f *Fetcher) doImport(ctx context.Context, o ImportOptions) (*ImportResult, error) {
	switch {
	case f.Cache == nil:
		return nil, fmt.Errorf("no cache")
	case f.Store == nil:
		return nil, fmt.Errorf("no registry")
	case f.Hub == nil:
		return nil, fmt.Errorf("no Hub client")
	}
	if err := o.Ref.Validate(); err != nil {
		return nil, err
	}
	if o.Revision == "" {
		o.Revision = "main"
	}
	dl, err := f.DownloadDir(o.Repo, o.Revision)
	if err != nil {
		return nil, err
	}
	snap, err := f.Hub.DownloadT5(ctx, o.Repo, o.Revision, dl, hub.SnapshotOptions{Progress: o.DownloadProgress})
	if err != nil {
		return nil, err
	}
	if err := f.checkShape(o.Ref, dl); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(f.Cache.Root(), ".import-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	model := filepath.Join(work, "model")
	meta, err := ConvertChecked(ctx, dl, model, convert.Options{
		DType: o.DType, Name: o.Ref.String(), Origin: "hf:" + o.Repo + "@" + snap.Commit,
	}, GateOptions{Force: o.Force})
	if meta != nil && o.OnConverted != nil {
		o.OnConverted(meta)
	}
	if errors.Is(err, ErrParity) {
		return nil, fmt.Errorf("%w; nothing was pushed (use --force to push anyway)", err)
	}
	if err != nil {
		return nil, err
	}
	pushed, err := zoo.Push(ctx, f.Store, model, o.Ref, zoo.PushOptions{
		Progress: o.PushProgress, Logger: o.PushLogger,
		Validate: ParityValidator(o.Force), Catalog: f.Catalog,
	})
	if err != nil {
		return nil, err
	}
	if !o.KeepDownload {
		if err := os.RemoveAll(dl); err != nil {
			f.logger().Warn("could not remove the download", "dir", dl, "err", err)
		}
	}
	return &ImportResult{Ref: o.Ref, Repo: o.Repo, Revision: o.Revision, Commit: snap.Commit, Meta: meta, Push: pushed}, nil
}

// checkShape refuses, before anything is converted, a checkpoint whose config is not the
// catalog shape ref names — the published config, or for an unpublished shape name the
// grammar's — as push does again (zoo.PushOptions.Catalog) on the converted config.json.
func (f *Fetcher) checkShape(ref zoo.Ref, dir string) error {
	if err := zoo.CheckCatalogShape(f.Catalog, dir, ref); err != nil {
		return fmt.Errorf("%w (or import it under another name with --as)", err)
	}
	return nil
}

// ParityValidator is push's deep check (zoo.PushOptions.Validate): the weights agree with
// config.json tensor for tensor (convert.Open reads headers only), and, unless force, a
// lossy conversion that failed its parity gate is refused with ErrParity.
func ParityValidator(force bool) func(context.Context, string) error {
	return func(_ context.Context, dir string) error {
		ck, err := convert.Open(dir)
		if err != nil {
			return err
		}
		defer ck.Close()
		if m := ck.Meta; !force && m != nil && m.Parity != nil && !m.Parity.Passed {
			return fmt.Errorf("%w: t5zoo.json records a failed parity check (%s); push with --force to publish it anyway", ErrParity, m.Parity.Threshold)
		}
		return nil
	}
}
