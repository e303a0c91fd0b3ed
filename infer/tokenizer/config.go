package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// config is what T5Tokenizer.from_pretrained (transformers v4.30.2) takes
// from tokenizer_config.json and special_tokens_map.json.
type config struct {
	extraIDs                           int
	bos, eos, unk, sep, pad, cls, mask *tokenSpec
	additional                         []tokenSpec // nil: not configured
	cleanUp                            bool
}

// tokenSpec is a special token: a plain string, or an AddedToken object
// ({"content": ..., "lstrip": ..., "rstrip": ...}).
type tokenSpec struct {
	content        string
	added          bool
	lstrip, rstrip bool
}

func defaultConfig() *config {
	return &config{
		extraIDs: 100,
		eos:      &tokenSpec{content: "</s>"},
		unk:      &tokenSpec{content: "<unk>"},
		pad:      &tokenSpec{content: "<pad>"},
		cleanUp:  true,
	}
}

// readConfig reads tokenizer_config.json, then special_tokens_map.json,
// whose entries override the former's as in from_pretrained. Missing files
// leave the T5 defaults.
func readConfig(dir string) (*config, error) {
	cfg := defaultConfig()
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if err := cfg.apply(data); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return cfg, nil
}

func (c *config) apply(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	slots := map[string]**tokenSpec{
		"bos_token": &c.bos, "eos_token": &c.eos, "unk_token": &c.unk, "sep_token": &c.sep,
		"pad_token": &c.pad, "cls_token": &c.cls, "mask_token": &c.mask,
	}
	for key, raw := range m {
		if slot, ok := slots[key]; ok {
			s, err := parseTokenSpec(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			*slot = s
			continue
		}
		switch key {
		case "additional_special_tokens":
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			c.additional = []tokenSpec{}
			for i, r := range list {
				s, err := parseTokenSpec(r)
				if err != nil {
					return fmt.Errorf("%s[%d]: %w", key, i, err)
				}
				if s != nil {
					c.additional = append(c.additional, *s)
				}
			}
		case "extra_ids":
			if err := json.Unmarshal(raw, &c.extraIDs); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			if c.extraIDs < 0 || c.extraIDs > 1<<20 {
				return fmt.Errorf("%s: %d out of range", key, c.extraIDs)
			}
		case "clean_up_tokenization_spaces":
			if err := json.Unmarshal(raw, &c.cleanUp); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	return nil
}

// parseTokenSpec reads a token given as a string, null (nil: none) or an
// AddedToken object.
func parseTokenSpec(raw json.RawMessage) (*tokenSpec, error) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return &tokenSpec{content: s}, nil
	}
	var obj struct {
		Content string `json:"content"`
		LStrip  bool   `json:"lstrip"`
		RStrip  bool   `json:"rstrip"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("want a string or an AddedToken object: %w", err)
	}
	return &tokenSpec{content: obj.Content, added: true, lstrip: obj.LStrip, rstrip: obj.RStrip}, nil
}

// pyIsSpace reports whether Python's str.isspace() holds for r (Unicode
// category Zs or bidirectional class WS, B or S), as strip() uses it.
func pyIsSpace(r rune) bool {
	switch {
	case r >= 0x09 && r <= 0x0D, r >= 0x1C && r <= 0x20:
		return true
	case r < 0x85:
		return false
	case r == 0x85, r == 0xA0, r == 0x1680, r >= 0x2000 && r <= 0x200A,
		r == 0x2028, r == 0x2029, r == 0x202F, r == 0x205F, r == 0x3000:
		return true
	}
	return false
}

// pyLStrip is Python's str.lstrip(); malformed UTF-8 is never space.
func pyLStrip(s string) string {
	for s != "" {
		r, n := utf8.DecodeRuneInString(s)
		if !pyIsSpace(r) {
			break
		}
		s = s[n:]
	}
	return s
}

// pyRStrip is Python's str.rstrip().
func pyRStrip(s string) string {
	for s != "" {
		r, n := utf8.DecodeLastRuneInString(s)
		if !pyIsSpace(r) {
			break
		}
		s = s[:len(s)-n]
	}
	return s
}

// pyStrip is Python's str.strip().
func pyStrip(s string) string { return pyRStrip(pyLStrip(s)) }
