package zoo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
)

// Digest names content by its sha256: "sha256:" followed by 64 lower-case hex digits. It is
// the key of a blob (the sha256 of the chunk's uncompressed bytes) and the identity of a
// whole file and of a manifest.
type Digest string

const digestPrefix = "sha256:"

// ParseDigest checks that s is "sha256:<64 lower-case hex digits>".
func ParseDigest(s string) (Digest, error) {
	hexPart, ok := strings.CutPrefix(s, digestPrefix)
	if !ok || len(hexPart) != 2*sha256.Size {
		return "", fmt.Errorf("zoo: digest %q is not sha256:<64 hex digits>", s)
	}
	for _, c := range hexPart {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("zoo: digest %q is not sha256:<64 lower-case hex digits>", s)
		}
	}
	return Digest(s), nil
}

// DigestOf returns the digest of b.
func DigestOf(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest(digestPrefix + hex.EncodeToString(sum[:]))
}

// digestFromHash returns the digest a sha256 hash.Hash has accumulated.
func digestFromHash(h hash.Hash) Digest {
	return Digest(digestPrefix + hex.EncodeToString(h.Sum(nil)))
}

// Hex returns the 64 hex digits after "sha256:".
func (d Digest) Hex() string { return strings.TrimPrefix(string(d), digestPrefix) }

// String returns d as written, "sha256:<hex>".
func (d Digest) String() string { return string(d) }

// Short returns the first 12 hex digits, for logs and tables.
func (d Digest) Short() string {
	h := d.Hex()
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// verifyReader passes bytes through and checks, at EOF, that exactly size bytes with digest
// want were read (the checksumReader of archive/zip, ggcr's internal/verify). A mismatch is
// returned by the Read that would have returned io.EOF, so a consumer never sees a clean
// EOF on wrong content.
type verifyReader struct {
	r    io.Reader
	h    hash.Hash
	want Digest
	size int64 // expected
	n    int64 // read so far
	err  error // sticky
}

func newVerifyReader(r io.Reader, want Digest, size int64) *verifyReader {
	// Read at most one byte past size, so that overlong content is detected without
	// draining an unbounded stream.
	return &verifyReader{r: io.LimitReader(r, size+1), h: sha256.New(), want: want, size: size}
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.size {
		v.err = &DigestError{Want: v.want, Got: digestFromHash(v.h), Size: v.n}
		return 0, v.err
	}
	if err == io.EOF {
		if got := digestFromHash(v.h); got != v.want || v.n != v.size {
			v.err = &DigestError{Want: v.want, Got: got, Size: v.n}
			return n, v.err
		}
		v.err = io.EOF
	} else if err != nil {
		v.err = err
	}
	return n, err
}
