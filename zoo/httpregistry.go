package zoo

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"
)

// DefaultPresignExpiry is how long the presigned URLs of RegistryOptions stay valid when
// PresignExpiry is zero.
const DefaultPresignExpiry = 15 * time.Minute

// RegistryOptions configures NewRegistryHandler. The zero value works.
type RegistryOptions struct {
	// PresignExpiry: when the store is an *S3Store, blob GETs answer 307 with a presigned
	// URL of the bucket valid this long, so that blob bytes do not pass through the server;
	// 0 means DefaultPresignExpiry, a negative value streams blobs through the server.
	PresignExpiry time.Duration
	// Logger hears of store failures other than "not found"; nil discards.
	Logger *slog.Logger
}

// NewRegistryHandler serves store read-only with the HTTP registry protocol (see HTTPStore):
// the request paths are taken relative to the handler's mount point, which is stripped
// beforehand (http.StripPrefix) when it is not the root.
func NewRegistryHandler(store Store, opts RegistryOptions) http.Handler {
	if opts.PresignExpiry == 0 {
		opts.PresignExpiry = DefaultPresignExpiry
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	return &registryHandler{store: store, opts: opts}
}

type registryHandler struct {
	store Store
	opts  RegistryOptions
}

// ServeHTTP implements http.Handler.
func (h *registryHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.writeError(w, r, http.StatusMethodNotAllowed, codeBadRequest, "the registry is read-only")
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	blobs := path.Dir(BlobKey(DigestOf(nil))) + "/" // "blobs/sha256/"
	manifests := pathFor(manifestsRootPathSpec{}) + "/"
	switch {
	case strings.HasPrefix(p, blobs):
		d, err := ParseDigest(digestPrefix + strings.TrimPrefix(p, blobs))
		if err != nil {
			h.writeError(w, r, http.StatusBadRequest, codeBadRequest, err.Error())
			return
		}
		h.serveBlob(w, r, d)
	case p == manifests && r.Method == http.MethodGet:
		h.serveList(w, r)
	case strings.HasPrefix(p, manifests):
		ref, ok := refFromManifestKey(p)
		if !ok {
			h.writeError(w, r, http.StatusNotFound, codeNotFound, "no such manifest path: "+p)
			return
		}
		h.serveManifest(w, r, ref)
	default:
		h.writeError(w, r, http.StatusNotFound, codeNotFound, "not a registry path: "+p)
	}
}

func (h *registryHandler) serveBlob(w http.ResponseWriter, r *http.Request, d Digest) {
	ctx := r.Context()
	if s3, ok := h.store.(*S3Store); ok && r.Method == http.MethodGet && h.opts.PresignExpiry > 0 {
		u, err := s3.core.Client.PresignedGetObject(ctx, s3.bucket, s3.key(blobPathSpec{d}), h.opts.PresignExpiry, nil)
		if err != nil {
			h.storeError(w, r, s3Error("presign blob "+d.Short(), err))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
		return
	}
	size, err := h.store.StatBlob(ctx, d)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", blobMediaType)
	hdr.Set("Content-Length", contentLength(size))
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable") // blobs never change
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	body, err := h.store.GetBlob(ctx, d)
	if err != nil {
		hdr.Del("Content-Length")
		hdr.Del("Cache-Control")
		h.storeError(w, r, err)
		return
	}
	defer body.Close()
	w.WriteHeader(http.StatusOK)
	if n, err := io.Copy(w, body); err != nil && ctx.Err() == nil {
		// The status is sent: the client sees a short body, which it retries.
		h.opts.Logger.Warn("registry: blob stream failed", "digest", d.Short(), "sent", n, "size", size, "err", err)
	}
}

func (h *registryHandler) serveManifest(w http.ResponseWriter, r *http.Request, ref Ref) {
	data, err := h.store.GetManifest(r.Context(), ref)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ManifestMediaType)
	hdr.Set("Content-Length", contentLength(int64(len(data))))
	hdr.Set("ETag", `"`+DigestOf(data).String()+`"`)
	hdr.Set("Cache-Control", "no-cache") // tags move
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(data)
	}
}

func (h *registryHandler) serveList(w http.ResponseWriter, r *http.Request) {
	refs, err := h.store.ListManifests(r.Context())
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	l := manifestList{Manifests: make([]string, len(refs))}
	for i, ref := range refs {
		l.Manifests[i] = ref.String()
	}
	w.Header().Set("Content-Type", ListMediaType)
	w.Header().Set("Cache-Control", "no-cache")
	json.NewEncoder(w).Encode(l)
}

// storeError answers a failure of the store: 404 for what is missing, 502 for the others
// (the server's own store failed, not the client's request).
func (h *registryHandler) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		h.writeError(w, r, http.StatusNotFound, codeNotFound, err.Error())
		return
	case r.Context().Err() != nil:
		return // the client is gone
	}
	h.opts.Logger.Error("registry: store failed", "method", r.Method, "path", r.URL.Path, "err", err)
	switch {
	case errors.Is(err, ErrNoBucket):
		h.writeError(w, r, http.StatusBadGateway, codeRegistryNoBucket, err.Error())
	case errors.Is(err, ErrAccessDenied):
		h.writeError(w, r, http.StatusBadGateway, codeRegistryAccessDenied, err.Error())
	default:
		h.writeError(w, r, http.StatusBadGateway, codeRegistryError, err.Error())
	}
}

// writeError sends {"error": {"code", "message"}}, the error format of t5zoo serve.
func (h *registryHandler) writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		json.NewEncoder(w).Encode(body)
	}
}
