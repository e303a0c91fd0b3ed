package zoo

import (
	"errors"
	"fmt"
)

// Sentinel errors. Operations wrap them with what was being done; test with errors.Is.
var (
	// ErrNotFound: the manifest, blob or local model does not exist.
	ErrNotFound = errors.New("zoo: not found")
	// ErrNoBucket: the S3 bucket named by the registry does not exist.
	ErrNoBucket = errors.New("zoo: bucket does not exist")
	// ErrAccessDenied: the store refused the credentials or the operation.
	ErrAccessDenied = errors.New("zoo: access denied")
	// ErrCorrupt: a blob's bytes do not decode to the content its digest names. *DigestError
	// wraps it.
	ErrCorrupt = errors.New("zoo: corrupt blob")
	// ErrBadRef: a NAME[:TAG] reference that does not follow the grammar of docs/registry.md.
	ErrBadRef = errors.New("zoo: malformed reference")
	// ErrBadManifest: manifest bytes that do not parse or break a rule of docs/registry.md.
	ErrBadManifest = errors.New("zoo: malformed manifest")
	// ErrInvalidModel: a model directory that push refuses (missing or inconsistent files).
	ErrInvalidModel = errors.New("zoo: invalid model directory")
)

// DigestError reports content whose sha256 differs from the digest it was stored or listed
// under. It wraps ErrCorrupt.
type DigestError struct {
	Want Digest // the digest the content should have
	Got  Digest // the digest of the bytes read
	Size int64  // how many (uncompressed) bytes were read
}

// Error implements error.
func (e *DigestError) Error() string {
	return fmt.Sprintf("zoo: digest mismatch: want %s, got %s (%d bytes)", e.Want, e.Got, e.Size)
}

// Unwrap returns ErrCorrupt.
func (e *DigestError) Unwrap() error { return ErrCorrupt }
