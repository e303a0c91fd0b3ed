// Package zoo is the checkpoint registry of t5zoo: models stored as a manifest per NAME:TAG
// that lists each file as fixed-size chunks, every chunk a content-addressed, zstd-compressed
// blob (keyed by the sha256 of its uncompressed bytes), in a Store — a local directory (the
// embedded default) or an S3 bucket (MinIO, AWS) — and the local cache that pulls lay out as
// plain model directories ready for mmap.
//
// The format is specified in docs/registry.md; the object tree is documented once, on
// pathFor. Pulls fetch chunks in parallel with bounded memory and stall, rate and deadline
// limits, verify every chunk's digest before it counts as written and every file's before
// the model appears, resume from a journal after a crash, take file locks per reference and
// per manifest so that concurrent pulls share one download, repair a damaged local copy,
// and write the local manifest last: a model is either whole (its manifest is present) or
// absent. Pushes validate the model directory (against the catalog's shape, for a shape
// name) first, skip blobs the store already holds and write the manifest last.
//
// zoo imports nothing from t5zoo but catalog; it reads no environment variables (cmd/t5zoo
// does, and passes what it read in through the option structs).
package zoo
