package zoo

import (
	"errors"
	"fmt"
	"strings"

	"github.com/t5zoo/t5zoo/catalog"
)

// DefaultTag is the tag of a reference written without one.
const DefaultTag = "latest"

// Limits of the reference grammar (docs/registry.md, "References").
const (
	maxNameLen        = 255
	maxNameComponents = 4
	maxTagLen         = 128
)

// Ref names a model in a registry: NAME:TAG. Both fields are in canonical form once parsed,
// so a Ref can be compared with == and used as a path or object key component.
type Ref struct {
	// Name is a catalog shape name in canonical form ("t5-efficient-base-nl36") or a model
	// name of one to four lower-case components joined by "/" ("acme/base-nl36-sst2").
	Name string
	// Tag is a version label; "latest" when none was given.
	Tag string
}

// String returns "NAME:TAG".
func (r Ref) String() string { return r.Name + ":" + r.Tag }

// ParseRef parses NAME[:TAG]. A NAME that the catalog's shape grammar accepts is
// canonicalised ("base-nl36" and "google/t5-efficient-base-nl36" are both
// "t5-efficient-base-nl36"); a name starting with "t5-efficient-" must follow that grammar.
// Any other name is one to four components [a-z0-9]+([._-][a-z0-9]+)* joined by "/", at
// most 255 bytes in all. TAG is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. Nothing else is accepted,
// so a Ref can never escape a directory or surprise an object key.
func ParseRef(s string) (Ref, error) {
	bad := func(format string, args ...any) (Ref, error) {
		return Ref{}, fmt.Errorf("%w %q: %s", ErrBadRef, s, fmt.Sprintf(format, args...))
	}
	if len(s) > maxNameLen+1+maxTagLen {
		return bad("longer than %d bytes", maxNameLen+1+maxTagLen)
	}
	name, tag := s, DefaultTag
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		name, tag = s[:i], s[i+1:]
		if err := checkTag(tag); err != nil {
			return bad("%v", err)
		}
	}
	canon, err := canonicalName(name)
	if err != nil {
		return bad("%v", err)
	}
	return Ref{Name: canon, Tag: tag}, nil
}

// MustParseRef is ParseRef for references known to be valid (tests, examples); it panics
// on error.
func MustParseRef(s string) Ref {
	r, err := ParseRef(s)
	if err != nil {
		panic(err)
	}
	return r
}

// Validate reports whether r is a reference in canonical form, as ParseRef returns them.
func (r Ref) Validate() error {
	p, err := ParseRef(r.String())
	if err != nil {
		return err
	}
	if p != r {
		return fmt.Errorf("%w %q: not canonical (want %q)", ErrBadRef, r.String(), p.String())
	}
	return nil
}

func checkTag(tag string) error {
	if tag == "" {
		return errors.New("empty tag after ':'")
	}
	if len(tag) > maxTagLen {
		return fmt.Errorf("tag longer than %d bytes", maxTagLen)
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
			i > 0 && (c == '.' || c == '-')
		if !ok {
			return fmt.Errorf("tag %q: want [A-Za-z0-9_][A-Za-z0-9._-]*", tag)
		}
	}
	return nil
}

// canonicalName returns the canonical form of a model name, or why it is not one.
func canonicalName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if len(name) > maxNameLen {
		return "", fmt.Errorf("name longer than %d bytes", maxNameLen)
	}
	// Only the characters of either grammar, before anything else looks at the name (the
	// catalog's Canonical trims spaces, which a reference must not contain).
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return "", fmt.Errorf("name has %q; want lower-case letters, digits, '.', '_', '-' and '/'", c)
		}
	}
	lower := strings.ToLower(name)
	if n, err := catalog.ParseName(name); err == nil {
		return n.String(), nil
	} else if strings.HasPrefix(lower, catalog.Prefix) || strings.HasPrefix(lower, catalog.HFOrg+"/"+catalog.Prefix) {
		// The t5-efficient- namespace belongs to the shape grammar: a typo there is an
		// error, not a new model name.
		return "", err
	}
	if lower != name {
		return "", errors.New("model names are lower case (shape names excepted)")
	}
	parts := strings.Split(name, "/")
	if len(parts) > maxNameComponents {
		return "", fmt.Errorf("more than %d '/'-separated components", maxNameComponents)
	}
	for _, p := range parts {
		if err := checkComponent(p); err != nil {
			return "", err
		}
	}
	return name, nil
}

// checkComponent checks one name component against [a-z0-9]+([._-][a-z0-9]+)*: it starts and
// ends with a letter or digit, and separators never touch, so "", ".", ".." and "_tags" are
// all impossible.
func checkComponent(p string) error {
	if p == "" {
		return errors.New("empty name component (leading, trailing or doubled '/')")
	}
	prevSep := true // a separator may not come first
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			prevSep = false
			continue
		}
		if prevSep {
			return fmt.Errorf("name component %q: '.', '_' and '-' go only between letters or digits", p)
		}
		prevSep = true
	}
	if prevSep {
		return fmt.Errorf("name component %q ends with a separator", p)
	}
	return nil
}
