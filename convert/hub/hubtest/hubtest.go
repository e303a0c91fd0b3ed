// Package hubtest is a fake Hugging Face Hub for tests: an httptest server that serves
// repositories from memory in the Hub's URL layout (the revision API, /resolve/ with LFS
// files redirected to a CDN path, ETag/X-Linked-Etag/X-Linked-Size/X-Repo-Commit headers,
// Range and If-Range), answers errors with the Hub's X-Error-Code, and misbehaves on
// request: failing statuses, connections cut mid-body, stalls, corrupted bodies, ignored
// ranges, files that change between attempts.
package hubtest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Repo is a repository the server holds.
type Repo struct {
	// ID is namespace/name (or a bare name).
	ID string
	// Files maps paths to contents.
	Files map[string][]byte
	// Commit is the 40-hex commit id "main" resolves to; "" derives one from ID.
	Commit string
	// Gated repositories need "Authorization: Bearer <Server.Token>".
	Gated bool
}

// LoadDir returns a repository holding the regular files of dir (not its subdirectories).
func LoadDir(id, dir string) (Repo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Repo{}, err
	}
	r := Repo{ID: id, Files: map[string][]byte{}}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return Repo{}, err
		}
		r.Files[e.Name()] = b
	}
	return r, nil
}

// IsLFS reports whether the Hub stores path with git LFS, by the extensions of its default
// .gitattributes (the ones model repositories use).
func IsLFS(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".bin", ".safetensors", ".model", ".h5", ".msgpack", ".ckpt", ".pt", ".pth", ".onnx", ".gguf", ".ot", ".tflite", ".pb", ".zip", ".npy", ".npz", ".pkl", ".arrow", ".parquet":
		return true
	}
	return false
}

// Fault is one misbehaviour, applied to one content request (the CDN request of an LFS file,
// the /resolve/ request of a regular file).
type Fault struct {
	// Status answers with this status and no body instead of the content.
	Status int
	// CutAfter, when > 0, sends that many bytes of the body, then drops the connection.
	CutAfter int64
	// Stall, with CutAfter, sends nothing more for this long (or until the client gives up)
	// before dropping the connection.
	Stall time.Duration
	// Corrupt flips one byte in the middle of the body; the headers stay those of the file.
	Corrupt bool
	// IgnoreRange answers a range request with the whole file (200).
	IgnoreRange bool
	// IgnoreIfRange honours a range request even when its If-Range no longer matches (a
	// broken cache), so only the client's own ETag check stops it splicing two versions.
	IgnoreIfRange bool
	// Then, when set, runs after the fault was served (to change a file between attempts).
	Then func()
}

// Request is one request the server received.
type Request struct {
	Method, Path, Range, IfRange, Authorization string
	// Status is the response status (a transfer cut by a Fault keeps the status it began
	// with).
	Status int
}

// Server is the fake Hub. Its URL is the endpoint to give the client.
type Server struct {
	*httptest.Server
	// Token is the token gated repositories accept.
	Token string

	mu       sync.Mutex
	repos    map[string]*Repo
	faults   map[string][]Fault
	requests []Request
}

// New starts a server holding repos. Close it when done.
func New(repos ...Repo) *Server {
	s := &Server{Token: "hf_test_token", repos: map[string]*Repo{}, faults: map[string][]Fault{}}
	for _, r := range repos {
		s.AddRepo(r)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// AddRepo adds (or replaces) a repository.
func (s *Server) AddRepo(r Repo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Commit == "" {
		sum := sha1.Sum([]byte(r.ID))
		r.Commit = hex.EncodeToString(sum[:])
	}
	files := make(map[string][]byte, len(r.Files))
	for k, v := range r.Files {
		files[k] = v
	}
	r.Files = files
	s.repos[r.ID] = &r
}

// SetFile changes (or adds) a file: its content, size and ETag change with it.
func (s *Server) SetFile(repo, path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[repo].Files[path] = data
}

// Inject queues faults for the next content requests of repo's file path, one per request.
func (s *Server) Inject(repo, path string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[repo+"/"+path] = append(s.faults[repo+"/"+path], faults...)
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) nextFault(key string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[key]
	if len(q) == 0 {
		return nil
	}
	f := q[0]
	s.faults[key] = q[1:]
	return &f
}

// statusRecorder notes the status for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusRecorder) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(), Range: r.Header.Get("Range"),
			IfRange: r.Header.Get("If-Range"), Authorization: r.Header.Get("Authorization"), Status: rec.status})
		s.mu.Unlock()
	}()
	p := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(p, "/api/models/"):
		s.api(rec, r, strings.TrimPrefix(p, "/api/models/"))
	case strings.HasPrefix(p, "/cdn/"):
		s.cdn(rec, r, strings.TrimPrefix(p, "/cdn/"))
	case strings.Contains(p, "/resolve/"):
		s.resolve(rec, r, p)
	default:
		hubError(rec, http.StatusNotFound, "", "not found")
	}
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	if msg != "" {
		w.Header().Set("X-Error-Message", msg)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// lookup finds the repository and checks access and revision, answering the error itself.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, id, rev string) (*Repo, bool) {
	s.mu.Lock()
	repo, ok := s.repos[id]
	s.mu.Unlock()
	auth := r.Header.Get("Authorization")
	switch {
	case !ok && auth == "":
		hubError(w, http.StatusUnauthorized, "RepoNotFound", "Repository Not Found for url: "+r.URL.String()+".")
		return nil, false
	case !ok:
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository Not Found for url: "+r.URL.String()+".")
		return nil, false
	case repo.Gated && auth == "":
		hubError(w, http.StatusUnauthorized, "GatedRepo", "Access to model "+id+" is restricted. You must have access to it and be authenticated to access it. Please log in.")
		return nil, false
	case repo.Gated && auth != "Bearer "+s.Token:
		hubError(w, http.StatusForbidden, "GatedRepo", "Access to model "+id+" is restricted and you are not in the authorized list.")
		return nil, false
	case rev != "main" && rev != repo.Commit:
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return nil, false
	}
	return repo, true
}

func gitSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// lfsPointer is the git LFS pointer file the Hub stores in git for an LFS file.
func lfsPointer(b []byte) []byte {
	return fmt.Appendf(nil, "version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", sha256Hex(b), len(b))
}

// api serves GET {repo}/revision/{rev}.
func (s *Server) api(w http.ResponseWriter, r *http.Request, rest string) {
	id, rev, ok := strings.Cut(rest, "/revision/")
	if !ok {
		hubError(w, http.StatusNotFound, "", "unknown API")
		return
	}
	rev, err := url.PathUnescape(rev)
	if err != nil {
		hubError(w, http.StatusBadRequest, "", "bad revision")
		return
	}
	repo, ok := s.lookup(w, r, id, rev)
	if !ok {
		return
	}
	blobs := r.URL.Query().Get("blobs") == "true"
	type lfs struct {
		SHA256      string `json:"sha256"`
		Size        int    `json:"size"`
		PointerSize int    `json:"pointerSize"`
	}
	type sibling struct {
		RFilename string `json:"rfilename"`
		Size      *int   `json:"size,omitempty"`
		BlobID    string `json:"blobId,omitempty"`
		LFS       *lfs   `json:"lfs,omitempty"`
	}
	s.mu.Lock()
	var names []string
	for name := range repo.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	var sibs []sibling
	for _, name := range names {
		b := repo.Files[name]
		sib := sibling{RFilename: name}
		if blobs {
			n := len(b)
			sib.Size = &n
			sib.BlobID = gitSHA1(b)
			if IsLFS(name) {
				ptr := lfsPointer(b)
				sib.BlobID = gitSHA1(ptr)
				sib.LFS = &lfs{SHA256: sha256Hex(b), Size: n, PointerSize: len(ptr)}
			}
		}
		sibs = append(sibs, sib)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"_id": repo.Commit[:24], "id": repo.ID, "modelId": repo.ID, "sha": repo.Commit, "siblings": sibs})
}

// resolve serves {repo}/resolve/{rev}/{path}.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request, p string) {
	id, rest, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/resolve/")
	rev, file, ok := strings.Cut(rest, "/")
	if !ok {
		hubError(w, http.StatusNotFound, "EntryNotFound", "no file")
		return
	}
	rev, err1 := url.PathUnescape(rev)
	file, err2 := url.PathUnescape(file)
	if err1 != nil || err2 != nil {
		hubError(w, http.StatusBadRequest, "", "bad path")
		return
	}
	repo, ok := s.lookup(w, r, id, rev)
	if !ok {
		return
	}
	s.mu.Lock()
	data, ok := repo.Files[file]
	s.mu.Unlock()
	if !ok {
		hubError(w, http.StatusNotFound, "EntryNotFound", file+" does not exist on \""+rev+"\"")
		return
	}
	w.Header().Set("X-Repo-Commit", repo.Commit)
	if IsLFS(file) {
		sum := sha256Hex(data)
		w.Header().Set("X-Linked-Etag", `"`+sum+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(data)))
		w.Header().Set("ETag", `"`+gitSHA1(lfsPointer(data))+`"`)
		w.Header().Set("Location", "/cdn/"+sum+"?file="+url.QueryEscape(id+"/"+file))
		w.WriteHeader(http.StatusFound)
		return
	}
	s.serve(w, r, id+"/"+file, data, gitSHA1(data))
}

// cdn serves /cdn/{sha256}: the content of an LFS file, by hash.
func (s *Server) cdn(w http.ResponseWriter, r *http.Request, sum string) {
	key := r.URL.Query().Get("file")
	s.mu.Lock()
	var data []byte
	found := false
	for _, repo := range s.repos {
		for _, b := range repo.Files {
			if sha256Hex(b) == sum {
				data, found = b, true
			}
		}
	}
	s.mu.Unlock()
	if !found {
		http.Error(w, "no such object", http.StatusNotFound)
		return
	}
	s.serve(w, r, key, data, sum)
}

// cutWriter drops the connection after a number of body bytes.
type cutWriter struct {
	http.ResponseWriter
	left  int64
	stall time.Duration
	r     *http.Request
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) < c.left {
		c.left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	c.ResponseWriter.Write(p[:c.left])
	c.left = 0
	c.ResponseWriter.(http.Flusher).Flush()
	if c.stall > 0 {
		t := time.NewTimer(c.stall)
		select {
		case <-t.C:
		case <-c.r.Context().Done():
			t.Stop()
		}
	}
	panic(http.ErrAbortHandler) // the server closes the connection without finishing the body
}

// serve sends data with its ETag, honouring Range and If-Range, and the next fault of key.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, key string, data []byte, etag string) {
	f := s.nextFault(key)
	if f != nil && f.Then != nil {
		defer f.Then()
	}
	if f != nil && f.Status != 0 {
		hubError(w, f.Status, "", http.StatusText(f.Status))
		return
	}
	body := data
	if f != nil && f.Corrupt && len(data) > 0 {
		body = bytes.Clone(data)
		body[len(body)/2] ^= 0xff
	}
	if f != nil && f.IgnoreRange {
		r.Header.Del("Range")
	}
	if f != nil && f.IgnoreIfRange {
		r.Header.Del("If-Range")
	}
	w.Header().Set("ETag", `"`+etag+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	if f != nil && f.CutAfter > 0 {
		w = &cutWriter{ResponseWriter: w, left: f.CutAfter, stall: f.Stall, r: r}
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}
