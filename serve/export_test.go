package serve

import "context"

// HoldModel acquires the model name as a request does, loading it if needed, and keeps it
// in use until release is called: tests use it for models that must be busy.
func (s *Server) HoldModel(ctx context.Context, name string) (release func(), err error) {
	_, release, err = s.models.acquire(ctx, name, nil)
	return release, err
}
