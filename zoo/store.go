package zoo

import (
	"context"
	"io"
)

// Store is a registry's object storage: blobs by digest and manifests by reference, laid out
// as pathFor describes. Blobs are moved as stored (zstd-compressed) bytes; compression and
// verification happen above the Store, identically for every implementation, so a Store is
// only storage. The interface is kept small so that the read-only HTTPStore (a t5zoo serve's
// view of the same tree) implements it, returning ErrAccessDenied from the writing methods.
//
// Errors wrap ErrNotFound, ErrNoBucket and ErrAccessDenied where they apply; anything else
// is treated as transient by the retrying callers (Pull, Push).
type Store interface {
	// StatBlob returns the stored (compressed) size of blob d, or an error wrapping
	// ErrNotFound.
	StatBlob(ctx context.Context, d Digest) (int64, error)
	// GetBlob opens the stored bytes of blob d. The caller closes the reader.
	GetBlob(ctx context.Context, d Digest) (io.ReadCloser, error)
	// PutBlob stores size bytes read from r as blob d; r yields a zstd stream whose
	// decompressed content has digest d. Implementations that can check d do (LocalStore),
	// and a blob never becomes visible half-written.
	PutBlob(ctx context.Context, d Digest, r io.Reader, size int64) error

	// GetManifest returns the manifest bytes of ref, or an error wrapping ErrNotFound.
	GetManifest(ctx context.Context, ref Ref) ([]byte, error)
	// PutManifest stores the manifest bytes of ref, replacing any.
	PutManifest(ctx context.Context, ref Ref, data []byte) error
	// DeleteManifest removes ref's manifest (not its blobs), or returns an error wrapping
	// ErrNotFound.
	DeleteManifest(ctx context.Context, ref Ref) error
	// ListManifests returns the references that have a manifest, sorted by String.
	ListManifests(ctx context.Context) ([]Ref, error)
}

// Compile-time checks that the implementations satisfy Store.
var (
	_ Store = (*LocalStore)(nil)
	_ Store = (*S3Store)(nil)
)
