package zoo

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3Options configures an S3Store. The zero value of each field is documented; Bucket is
// required.
type S3Options struct {
	// Endpoint is the server: "http://host:port" (no TLS), "https://host[:port]" or
	// "host[:port]" (TLS). Empty: "https://s3.amazonaws.com".
	Endpoint string
	// Bucket holds the registry; it must exist.
	Bucket string
	// Prefix is prepended to every key (without slashes at either end); empty: the
	// registry is the bucket's root.
	Prefix string
	// Region of the bucket; empty: asked of the server.
	Region string
	// Creds signs requests; nil: anonymous requests (a public bucket). cmd/t5zoo passes
	// minio-go's chain of the AWS and MinIO environment variables and files.
	Creds *credentials.Credentials
	// Transport carries the requests; nil: minio-go's default transport.
	Transport http.RoundTripper
	// MaxRetries is minio-go's own retry count per request; 0 means 1 (no retry), because
	// Pull and Push retry whole chunk transfers with their own backoff.
	MaxRetries int
}

// S3Store is a registry in an S3 bucket (AWS S3, MinIO or any S3-compatible server), under
// an optional key prefix, with the layout of pathFor.
type S3Store struct {
	core   minio.Core
	bucket string
	prefix string // "" or "p/q/"
	desc   string
}

// ParseS3URL splits "s3://bucket[/prefix]" into bucket and prefix and checks both.
func ParseS3URL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("zoo: registry URL %q: want s3://bucket[/prefix]", s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	prefix = strings.TrimSuffix(prefix, "/")
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return "", "", fmt.Errorf("zoo: registry URL %q: bucket: %w", s, err)
	}
	if err := checkPrefix(prefix); err != nil {
		return "", "", fmt.Errorf("zoo: registry URL %q: %w", s, err)
	}
	return bucket, prefix, nil
}

// checkPrefix allows "" or components of [A-Za-z0-9._-] joined by "/", none starting with '.'.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	for _, c := range strings.Split(prefix, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("prefix %q: empty, '.' or '..' component", prefix)
		}
		if err := checkFilePath(c); err != nil {
			return fmt.Errorf("prefix %q: %w", prefix, err)
		}
	}
	return nil
}

// NewS3Store returns a store for opts. It sends no request; the first operation reports a
// missing bucket (ErrNoBucket) or refused credentials (ErrAccessDenied).
func NewS3Store(opts S3Options) (*S3Store, error) {
	if err := s3utils.CheckValidBucketNameStrict(opts.Bucket); err != nil {
		return nil, fmt.Errorf("zoo: s3 store: bucket %q: %w", opts.Bucket, err)
	}
	opts.Prefix = strings.Trim(opts.Prefix, "/")
	if err := checkPrefix(opts.Prefix); err != nil {
		return nil, fmt.Errorf("zoo: s3 store: %w", err)
	}
	host, secure, err := parseEndpoint(opts.Endpoint)
	if err != nil {
		return nil, err
	}
	creds := opts.Creds
	if creds == nil {
		creds = credentials.NewStaticV4("", "", "") // empty keys sign anonymously
	}
	retries := opts.MaxRetries
	if retries <= 0 {
		retries = 1
	}
	c, err := minio.New(host, &minio.Options{
		Creds:      creds,
		Secure:     secure,
		Region:     opts.Region,
		Transport:  opts.Transport,
		MaxRetries: retries,
	})
	if err != nil {
		return nil, fmt.Errorf("zoo: s3 store %s: %w", host, err)
	}
	c.SetAppInfo("t5zoo", "1")
	s := &S3Store{core: minio.Core{Client: c}, bucket: opts.Bucket}
	s.desc = "s3://" + opts.Bucket
	if opts.Prefix != "" {
		s.prefix = opts.Prefix + "/"
		s.desc += "/" + opts.Prefix
	}
	scheme := "https"
	if !secure {
		scheme = "http"
	}
	s.desc += " at " + scheme + "://" + host
	return s, nil
}

// parseEndpoint returns host[:port] and whether to use TLS.
func parseEndpoint(ep string) (host string, secure bool, err error) {
	if ep == "" {
		return "s3.amazonaws.com", true, nil
	}
	if !strings.Contains(ep, "://") {
		return ep, true, nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", false, fmt.Errorf("zoo: s3 endpoint %q: %w", ep, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", false, fmt.Errorf("zoo: s3 endpoint %q: want http(s)://host[:port]", ep)
	}
	return u.Host, u.Scheme == "https", nil
}

// String describes the store, e.g. "s3://models/zoo at http://127.0.0.1:9000".
func (s *S3Store) String() string { return s.desc }

func (s *S3Store) key(spec any) string { return s.prefix + pathFor(spec) }

// StatBlob implements Store.
func (s *S3Store) StatBlob(ctx context.Context, d Digest) (int64, error) {
	info, err := s.core.StatObject(ctx, s.bucket, s.key(blobPathSpec{d}), minio.StatObjectOptions{})
	if err != nil {
		return 0, s3Error("stat blob "+d.Short(), err)
	}
	return info.Size, nil
}

// GetBlob implements Store. The object streams from the response body.
func (s *S3Store) GetBlob(ctx context.Context, d Digest) (io.ReadCloser, error) {
	body, _, _, err := s.core.GetObject(ctx, s.bucket, s.key(blobPathSpec{d}), minio.GetObjectOptions{})
	if err != nil {
		return nil, s3Error("get blob "+d.Short(), err)
	}
	return body, nil
}

// PutBlob implements Store, as one PUT (chunks are at most MaxChunkLength bytes).
func (s *S3Store) PutBlob(ctx context.Context, d Digest, r io.Reader, size int64) error {
	if _, err := ParseDigest(string(d)); err != nil {
		return err
	}
	_, err := s.core.Client.PutObject(ctx, s.bucket, s.key(blobPathSpec{d}), r, size, minio.PutObjectOptions{
		ContentType:      "application/zstd",
		DisableMultipart: true,
		// No sha256 of the payload for the signature (a third pass over the bytes, after
		// the chunk's and the file's): minio-go sends a CRC32C trailer instead, and readers
		// check the content's sha256 anyway.
		DisableContentSha256: true,
	})
	if err != nil {
		return s3Error("put blob "+d.Short(), err)
	}
	return nil
}

// GetManifest implements Store.
func (s *S3Store) GetManifest(ctx context.Context, ref Ref) ([]byte, error) {
	body, _, _, err := s.core.GetObject(ctx, s.bucket, s.key(manifestPathSpec{ref}), minio.GetObjectOptions{})
	if err != nil {
		return nil, s3Error("get manifest "+ref.String(), err)
	}
	defer body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(body, MaxManifestSize+1)); err != nil {
		return nil, s3Error("get manifest "+ref.String(), err)
	}
	if buf.Len() > MaxManifestSize {
		return nil, fmt.Errorf("get manifest %s: %w: more than %d bytes", ref, ErrBadManifest, MaxManifestSize)
	}
	return buf.Bytes(), nil
}

// PutManifest implements Store.
func (s *S3Store) PutManifest(ctx context.Context, ref Ref, data []byte) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	_, err := s.core.Client.PutObject(ctx, s.bucket, s.key(manifestPathSpec{ref}), bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: ManifestMediaType, DisableMultipart: true})
	if err != nil {
		return s3Error("put manifest "+ref.String(), err)
	}
	return nil
}

// DeleteManifest implements Store. S3 deletes succeed on missing keys, so the manifest is
// looked up first to report ErrNotFound like LocalStore.
func (s *S3Store) DeleteManifest(ctx context.Context, ref Ref) error {
	key := s.key(manifestPathSpec{ref})
	if _, err := s.core.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err != nil {
		return s3Error("delete manifest "+ref.String(), err)
	}
	if err := s.core.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return s3Error("delete manifest "+ref.String(), err)
	}
	return nil
}

// ListManifests implements Store.
func (s *S3Store) ListManifests(ctx context.Context) ([]Ref, error) {
	var refs []Ref
	prefix := s.key(manifestsRootPathSpec{}) + "/"
	for obj := range s.core.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, s3Error("list manifests", obj.Err)
		}
		if r, ok := refFromManifestKey(strings.TrimPrefix(obj.Key, s.prefix)); ok {
			refs = append(refs, r)
		}
	}
	slices.SortFunc(refs, func(a, b Ref) int { return cmp.Compare(a.String(), b.String()) })
	return refs, nil
}

// s3Error maps an S3 error response to the package's sentinels by its code.
func s3Error(op string, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
		case "NoSuchBucket":
			return fmt.Errorf("%s: %w (%s): %w", op, ErrNoBucket, resp.BucketName, err)
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
			"ExpiredToken", "AllAccessDisabled", "XMinioInvalidTokenId", "InvalidTokenId":
			return fmt.Errorf("%s: %w: %w", op, ErrAccessDenied, err)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}
