package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCatalogLs(t *testing.T) {
	out, _, err := runCLI(t, "", "catalog", "ls")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// header + 130 shapes + summary line
	if len(lines) != 132 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[131], "130 shapes") {
		t.Fatalf("got %d lines; first %q last %q", len(lines), lines[0], lines[len(lines)-1])
	}
	if !strings.Contains(out, "t5-efficient-base-nl36") || !strings.Contains(out, "t5-efficient-tiny-nh8 *") {
		t.Fatal("missing rows or anomaly marks")
	}
}

func TestCatalogLsJSON(t *testing.T) {
	out, _, err := runCLI(t, "", "catalog", "ls", "--json", "--where", "size=base", "--where", "nl>=1", "--sort", "-params")
	if err == nil {
		t.Fatal("nl is not a field; want an error")
	}
	out, _, err = runCLI(t, "", "catalog", "ls", "--json", "--where", "size=base,num_layers>=24", "--sort", "-params")
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0]["name"] != "t5-efficient-base-nl36" {
		t.Fatalf("rows: %v", rows)
	}
	for _, key := range []string{"name", "hf_repo", "published", "d_model", "d_ff", "d_kv", "num_heads", "num_layers",
		"num_decoder_layers", "vocab_size", "feed_forward_proj", "tie_word_embeddings", "params", "flops"} {
		if _, ok := rows[0][key]; !ok {
			t.Errorf("ls --json lacks %q", key)
		}
	}
	if rows[0]["params"].(float64) != 619357440 {
		t.Errorf("base-nl36 params %v", rows[0]["params"])
	}
}

func TestCatalogShow(t *testing.T) {
	out, _, err := runCLI(t, "", "catalog", "show", "t5-efficient-base", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Name      string           `json:"name"`
		Published bool             `json:"published"`
		Params    int64            `json:"params"`
		Config    map[string]any   `json:"config"`
		FLOPs     map[string]any   `json:"flops"`
		Bytes     map[string]int64 `json:"bytes"`
		KVCache   map[string]int64 `json:"kv_cache"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Params != 222903552 || !rep.Published || rep.Config["d_model"].(float64) != 768 {
		t.Fatalf("show: %+v", rep)
	}
	if rep.Bytes["f32"] != 4*222903552 || rep.Bytes["bf16"] != 2*222903552 || rep.Bytes["int8"] == 0 {
		t.Fatalf("bytes: %v", rep.Bytes)
	}
	if rep.FLOPs["encoder"].(float64) <= 0 || rep.KVCache["self_per_target_token"] != 12*2*768*4 {
		t.Fatalf("costs: %v %v", rep.FLOPs, rep.KVCache)
	}

	out, _, err = runCLI(t, "", "catalog", "show", "base-nl40")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "published      no") || !strings.Contains(out, "40 encoder + 40 decoder") {
		t.Fatalf("unpublished show:\n%s", out)
	}
}

func TestCatalogErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"catalog", "show", "bsae-nl36"}, "did you mean t5-efficient-base-nl36"},
		{[]string{"catalog", "show"}, "accepts 1 arg"},
		{[]string{"catalog", "ls", "--where", "colour=red"}, "unknown field"},
		{[]string{"catalog", "ls", "--sort", "colour"}, "unknown field"},
		{[]string{"catalog", "ls", "--input-len", "-1"}, "between 0 and"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := runCLI(t, "", tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if out != "" {
				t.Fatalf("wrote to stdout on error: %q", out)
			}
		})
	}
}
