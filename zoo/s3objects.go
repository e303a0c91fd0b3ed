package zoo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
)

// MaxObjectSize bounds what S3Objects.Get reads: a hostile or mistaken object cannot cost
// more memory than this (the bound of evaluate.MaxObjectBytes, for the same objects).
const MaxObjectSize = 256 << 20

// S3Objects is a plain key → bytes view of a prefix of an S3 bucket, for what t5zoo keeps
// beside a registry (evaluation results under s3://BUCKET/PREFIX). It has the methods of
// evaluate.Store; missing keys are errors wrapping ErrNotFound and fs.ErrNotExist.
type S3Objects struct {
	core   minio.Core
	bucket string
	prefix string // "" or "p/q/"
	desc   string
}

// NewS3Objects returns the view of opts.Bucket under opts.Prefix, connecting as NewS3Store
// does. It sends no request.
func NewS3Objects(opts S3Options) (*S3Objects, error) {
	s, err := NewS3Store(opts)
	if err != nil {
		return nil, err
	}
	return &S3Objects{core: s.core, bucket: s.bucket, prefix: s.prefix, desc: s.desc}, nil
}

// String describes the view, e.g. "s3://models/evals at http://127.0.0.1:9000".
func (o *S3Objects) String() string { return o.desc }

func (o *S3Objects) key(k string) (string, error) {
	bad := k == "" || strings.HasPrefix(k, "/") || strings.Contains(k, `\`)
	for _, el := range strings.Split(k, "/") {
		bad = bad || el == "" || el == "." || el == ".."
	}
	if bad {
		return "", fmt.Errorf("zoo: bad object key %q", k)
	}
	return o.prefix + k, nil
}

func objectError(op string, err error) error {
	err = s3Error(op, err)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w (%w)", err, fs.ErrNotExist)
	}
	return err
}

// Get reads the object of key, up to MaxObjectSize bytes.
func (o *S3Objects) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := o.key(key)
	if err != nil {
		return nil, err
	}
	body, _, _, err := o.core.GetObject(ctx, o.bucket, k, minio.GetObjectOptions{})
	if err != nil {
		return nil, objectError("get "+key, err)
	}
	defer body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(body, MaxObjectSize+1)); err != nil {
		return nil, objectError("get "+key, err)
	}
	if buf.Len() > MaxObjectSize {
		return nil, fmt.Errorf("get %s: more than %d bytes", key, MaxObjectSize)
	}
	return buf.Bytes(), nil
}

// Put stores data under key in one PUT, which S3 makes visible whole or not at all.
func (o *S3Objects) Put(ctx context.Context, key string, data []byte) error {
	k, err := o.key(key)
	if err != nil {
		return err
	}
	ct := "application/octet-stream"
	switch {
	case strings.HasSuffix(key, ".jsonl"):
		ct = "application/x-ndjson"
	case strings.HasSuffix(key, ".json"):
		ct = "application/json"
	}
	_, err = o.core.Client.PutObject(ctx, o.bucket, k, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: ct, DisableMultipart: len(data) < 64<<20})
	if err != nil {
		return objectError("put "+key, err)
	}
	return nil
}

// List returns the keys under prefix (relative to the view's own prefix), sorted.
func (o *S3Objects) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for obj := range o.core.Client.ListObjects(ctx, o.bucket, minio.ListObjectsOptions{Prefix: o.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, objectError("list "+o.desc, obj.Err)
		}
		keys = append(keys, strings.TrimPrefix(obj.Key, o.prefix))
	}
	slices.Sort(keys)
	return keys, nil
}
