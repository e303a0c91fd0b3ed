package main

import (
	"strings"
	"testing"
)

// t5Tokenizer is the real T5 vocabulary copied with its golden outputs.
const t5Tokenizer = "../../infer/tokenizer/testdata/tokenizer-t5/hf_tokenizer"

// runTokenize runs `t5zoo args...` in-process with the given standard input.
func runTokenize(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	out, _, err := runCLI(t, stdin, args...)
	return out, err
}

func TestTokenizeCmd(t *testing.T) {
	// Expected values: golden case 122 of shared/golden/tokenizer-t5 (HF
	// transformers v4.30.2 T5Tokenizer).
	tests := []struct {
		name    string
		args    []string
		stdin   string
		want    string
		wantErr string
	}{
		{name: "encode", args: []string{t5Tokenizer},
			stdin: "\"Hello <extra_id_0> world <extra_id_1>.\"\n\n  \n\"\"",
			want: `{"ids":[8774,32099,296,32098,3,5,1],"pieces":["▁Hello","<extra_id_0>","▁world","<extra_id_1>","▁",".","</s>"]}` + "\n" +
				`{"ids":[1],"pieces":["</s>"]}` + "\n"},
		{name: "encode-model-file", args: []string{t5Tokenizer + "/spiece.model"},
			stdin: `"Yes"` + "\n", want: `{"ids":[2163,1],"pieces":["▁Yes","</s>"]}` + "\n"},
		{name: "decode", args: []string{"--decode", t5Tokenizer},
			stdin: "[8774, 32099, 296, 32098, 3, 5, 1]\n[]\n",
			want:  `"Hello<extra_id_0> world<extra_id_1>.</s>"` + "\n" + `""` + "\n"},
		{name: "decode-skip-special", args: []string{"--decode", "--skip-special", t5Tokenizer},
			stdin: "[8774, 32099, 296, 32098, 3, 5, 1]", want: `"Hello world."` + "\n"},
		{name: "bad-line", args: []string{t5Tokenizer}, stdin: "\"Yes\"\nYes\n\"No\"\n",
			want: `{"ids":[2163,1],"pieces":["▁Yes","</s>"]}` + "\n", wantErr: "stdin line 2: want a JSON string"},
		{name: "bad-ids", args: []string{"--decode", t5Tokenizer}, stdin: "[1, \"x\"]\n", wantErr: "stdin line 1: want a JSON array"},
		{name: "negative-id", args: []string{"--decode", t5Tokenizer}, stdin: "[1]\n[-5]\n",
			want: `"</s>"` + "\n", wantErr: "stdin line 2: tokenizer: decode: negative id -5"},
		{name: "skip-special-alone", args: []string{"--skip-special", t5Tokenizer}, wantErr: "--skip-special goes with --decode"},
		{name: "no-model", args: []string{"testdata/no-such-model"}, wantErr: "no such file"},
		{name: "no-args", args: nil, wantErr: "accepts 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runTokenize(t, tt.stdin, append([]string{"tokenize"}, tt.args...)...)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if out != tt.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", out, tt.want)
			}
		})
	}
}
