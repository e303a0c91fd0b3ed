package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
)

// SnapshotOptions are the per-call options of Snapshot and DownloadT5.
type SnapshotOptions struct {
	// Progress is as in DownloadOptions; it may be called from several goroutines at once.
	Progress func(file string, done, total int64)
	// Concurrency is the number of files downloaded at once; 0 means 4.
	Concurrency int
}

// Snapshot is a set of files of one repository commit in a local directory.
type Snapshot struct {
	Repo, Revision string
	// Commit is the commit the revision resolved to; every file was fetched at it.
	Commit string
	Dir    string
	// Files are in the order requested (for DownloadT5: the chosen files, then the shards).
	Files []Downloaded
}

// Snapshot downloads files of repo at revision into dir (each at dir/<path>). The revision is
// resolved to a commit first and every file is fetched at that commit, so a branch that
// moves during the download cannot mix two versions. A file already in dir whose size and
// hash match the listing is not downloaded again.
func (c *Client) Snapshot(ctx context.Context, repo, revision, dir string, files []string, opts SnapshotOptions) (*Snapshot, error) {
	info, err := c.Repo(ctx, repo, revision)
	if err != nil {
		return nil, err
	}
	if revision == "" {
		revision = "main"
	}
	snap := &Snapshot{Repo: repo, Revision: revision, Commit: info.SHA, Dir: dir}
	if err := c.fetchFiles(ctx, info, snap, files, opts); err != nil {
		return nil, err
	}
	return snap, nil
}

// fetchFiles downloads files (which must be in info) into snap.Dir, appending to snap.Files.
func (c *Client) fetchFiles(ctx context.Context, info *RepoInfo, snap *Snapshot, files []string, opts SnapshotOptions) error {
	at := snap.Commit
	if at == "" {
		at = snap.Revision
	}
	infos := make([]FileInfo, len(files))
	for i, f := range files {
		if err := checkFile(f); err != nil {
			return err
		}
		fi, ok := info.File(f)
		if !ok {
			return fmt.Errorf("hub: %s at %s has no file %q: %w", snap.Repo, snap.Revision, f, ErrNotFound)
		}
		infos[i] = fi
	}
	out := make([]Downloaded, len(files))
	g, ctx := errgroup.WithContext(ctx)
	n := opts.Concurrency
	if n <= 0 {
		n = 4
	}
	g.SetLimit(n)
	for i := range files {
		g.Go(func() error {
			fi := infos[i]
			dst := filepath.Join(snap.Dir, filepath.FromSlash(fi.Path))
			if d, ok := present(dst, fi); ok {
				if opts.Progress != nil {
					opts.Progress(fi.Path, d.Size, d.Size)
				}
				d.Commit = snap.Commit
				out[i] = *d
				return nil
			}
			d, err := c.download(ctx, snap.Repo, at, fi.Path, dst, &fi, opts.Progress)
			if err != nil {
				return err
			}
			out[i] = *d
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	snap.Files = append(snap.Files, out...)
	return nil
}

// present reports whether dst already holds the file fi describes, verified by size and by
// the listing's hash (sha256 for LFS files, git blob sha1 otherwise).
func present(dst string, fi FileInfo) (*Downloaded, bool) {
	st, err := os.Stat(dst)
	if err != nil || !st.Mode().IsRegular() || (fi.Size >= 0 && st.Size() != fi.Size) {
		return nil, false
	}
	f, err := os.Open(dst)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil || n != st.Size() {
		return nil, false
	}
	d := &Downloaded{File: fi.Path, Path: dst, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Skipped: true}
	switch {
	case fi.LFS != nil:
		d.ETag = fi.LFS.SHA256
		return d, strings.EqualFold(d.SHA256, fi.LFS.SHA256)
	case isHex(fi.BlobID, 40):
		d.ETag = fi.BlobID
		got, err := gitBlobSHA1(f, n)
		return d, err == nil && strings.EqualFold(got, fi.BlobID)
	}
	return nil, false
}

// The files of a Hugging Face T5 checkpoint.
const (
	ConfigFile            = "config.json"
	SafetensorsFile       = "model.safetensors"
	SafetensorsIndexFile  = "model.safetensors.index.json"
	PyTorchFile           = "pytorch_model.bin"
	PyTorchIndexFile      = "pytorch_model.bin.index.json"
	SentencePieceFile     = "spiece.model"
	TokenizerConfigFile   = "tokenizer_config.json"
	SpecialTokensMapFile  = "special_tokens_map.json"
	GenerationConfigFile  = "generation_config.json"
	indexSuffix           = ".index.json"
	missingWeightsMessage = "no PyTorch weights (model.safetensors, pytorch_model.bin or their sharded index): TensorFlow- and Flax-only repositories are not supported"
)

// T5Files chooses, from a repository's file list, the files a T5 import needs: config.json;
// the weights, preferring model.safetensors, then model.safetensors.index.json (whose shards
// WeightShards lists), then pytorch_model.bin, then pytorch_model.bin.index.json; the
// SentencePiece model spiece.model; and, when present, tokenizer_config.json,
// special_tokens_map.json and generation_config.json. It fails, naming what is missing, when
// config.json, the weights or spiece.model are absent.
func T5Files(files []string) ([]string, error) {
	has := make(map[string]bool, len(files))
	for _, f := range files {
		has[f] = true
	}
	var missing []string
	out := []string{ConfigFile}
	if !has[ConfigFile] {
		missing = append(missing, ConfigFile)
	}
	switch {
	case has[SafetensorsFile]:
		out = append(out, SafetensorsFile)
	case has[SafetensorsIndexFile]:
		out = append(out, SafetensorsIndexFile)
	case has[PyTorchFile]:
		out = append(out, PyTorchFile)
	case has[PyTorchIndexFile]:
		out = append(out, PyTorchIndexFile)
	default:
		missing = append(missing, missingWeightsMessage)
	}
	out = append(out, SentencePieceFile)
	if !has[SentencePieceFile] {
		missing = append(missing, SentencePieceFile+" (the SentencePiece tokenizer)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("hub: not an importable T5 repository: missing %s", strings.Join(missing, "; "))
	}
	for _, f := range []string{TokenizerConfigFile, SpecialTokensMapFile, GenerationConfigFile} {
		if has[f] {
			out = append(out, f)
		}
	}
	return out, nil
}

// WeightShards lists the shard files of a sharded checkpoint's index
// (model.safetensors.index.json or pytorch_model.bin.index.json: {"weight_map": {tensor:
// file}}), sorted and without duplicates.
func WeightShards(index []byte) ([]string, error) {
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(index, &idx); err != nil {
		return nil, fmt.Errorf("hub: weight index: %w", err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("hub: weight index has an empty weight_map")
	}
	var shards []string
	for tensor, f := range idx.WeightMap {
		if err := checkFile(f); err != nil {
			return nil, fmt.Errorf("hub: weight index: tensor %q: %w", tensor, err)
		}
		shards = append(shards, f)
	}
	slices.Sort(shards)
	return slices.Compact(shards), nil
}

// DownloadT5 downloads what a T5 import needs (T5Files, then the shards of a sharded index)
// from repo at revision into dir. See Snapshot.
func (c *Client) DownloadT5(ctx context.Context, repo, revision, dir string, opts SnapshotOptions) (*Snapshot, error) {
	info, err := c.Repo(ctx, repo, revision)
	if err != nil {
		return nil, err
	}
	files, err := T5Files(info.Names())
	if err != nil {
		return nil, fmt.Errorf("%w (%s has: %s)", err, repo, strings.Join(info.Names(), ", "))
	}
	if revision == "" {
		revision = "main"
	}
	snap := &Snapshot{Repo: repo, Revision: revision, Commit: info.SHA, Dir: dir}
	if err := c.fetchFiles(ctx, info, snap, files, opts); err != nil {
		return nil, err
	}
	for _, f := range files {
		if !strings.HasSuffix(f, indexSuffix) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		shards, err := WeightShards(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if err := c.fetchFiles(ctx, info, snap, shards, opts); err != nil {
			return nil, err
		}
	}
	return snap, nil
}
