package serve

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"
)

// Scope is what an API key may do.
type Scope int

// The scopes. Admin includes Read.
const (
	// ScopeRead: inference (generate, score, encode, completions), the catalog, the model
	// list, ps, the registry endpoint and the metrics.
	ScopeRead Scope = iota + 1
	// ScopeAdmin: also pull, delete and unload.
	ScopeAdmin
)

// String returns "read" or "admin".
func (s Scope) String() string {
	switch s {
	case ScopeRead:
		return "read"
	case ScopeAdmin:
		return "admin"
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// APIKey is a key clients send as "Authorization: Bearer <Key>" and its scope.
type APIKey struct {
	Key   string
	Scope Scope
}

// minKeyLen refuses keys short enough to guess.
const minKeyLen = 16

// ParseAPIKeys reads keys as T5ZOO_API_KEYS and --api-keys-file hold them: entries
// separated by commas or newlines, each KEY or KEY:SCOPE (scope "read", the default, or
// "admin"); blank entries and lines starting with "#" are skipped. A key is at least 16
// printable ASCII characters without spaces, commas or colons. Error messages never quote a
// key; they give the entry's position.
func ParseAPIKeys(s string) ([]APIKey, error) {
	var keys []APIKey
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		for entry := range strings.SplitSeq(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			n++
			key, scope, hasScope := strings.Cut(entry, ":")
			k := APIKey{Key: key, Scope: ScopeRead}
			if hasScope {
				switch scope {
				case "read":
				case "admin":
					k.Scope = ScopeAdmin
				default:
					return nil, fmt.Errorf("serve: API key %d: scope %q: want read or admin", n, scope)
				}
			}
			if len(key) < minKeyLen {
				return nil, fmt.Errorf("serve: API key %d: shorter than %d characters", n, minKeyLen)
			}
			for _, r := range key {
				if r <= ' ' || r > '~' {
					return nil, fmt.Errorf("serve: API key %d: characters other than printable ASCII", n)
				}
			}
			keys = append(keys, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("serve: API keys: %w", err)
	}
	return keys, nil
}

// keyring holds the keys as sha256 sums: comparing sums of equal length in constant time
// reveals neither the keys nor their lengths.
type keyring struct {
	sums   [][sha256.Size]byte
	scopes []Scope
}

func newKeyring(keys []APIKey) *keyring {
	k := &keyring{}
	for _, key := range keys {
		k.sums = append(k.sums, sha256.Sum256([]byte(key.Key)))
		k.scopes = append(k.scopes, key.Scope)
	}
	return k
}

// scope returns the scope of the presented key, 0 if unknown. Every key is compared, so the
// time taken does not depend on which key matched.
func (k *keyring) scope(presented string) Scope {
	sum := sha256.Sum256([]byte(presented))
	var found Scope
	for i := range k.sums {
		if subtle.ConstantTimeCompare(sum[:], k.sums[i][:]) == 1 {
			found = max(found, k.scopes[i])
		}
	}
	return found
}

// require lets a request through when the server has no keys, or when its bearer key has
// scope s.
func (s *Server) require(scope Scope) gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(s.keys.sums) == 0 {
			c.Next()
			return
		}
		h := c.GetHeader("Authorization")
		key, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || key == "" {
			writeError(c, fmt.Errorf("%w: send Authorization: Bearer <key>", ErrUnauthorized))
			return
		}
		got := s.keys.scope(strings.TrimSpace(key))
		switch {
		case got == 0:
			writeError(c, ErrUnauthorized)
			return
		case got < scope:
			writeError(c, fmt.Errorf("%w: %s needs a key with the %s scope", ErrForbidden, c.FullPath(), scope))
			return
		}
		c.Next()
	}
}
