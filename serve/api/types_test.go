package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestPrompt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Prompt
		ok   bool
	}{
		{`"hello"`, Prompt{Texts: []string{"hello"}}, true},
		{`""`, Prompt{Texts: []string{""}}, true},
		{`["a","b"]`, Prompt{Texts: []string{"a", "b"}}, true},
		{`[5,6,1]`, Prompt{IDs: [][]int{{5, 6, 1}}}, true},
		{`[[5,1],[7,1]]`, Prompt{IDs: [][]int{{5, 1}, {7, 1}}}, true},
		{`[]`, Prompt{}, false},
		{`[["a"]]`, Prompt{}, false},
		{`{"x":1}`, Prompt{}, false},
		{`3`, Prompt{}, false},
	} {
		var p Prompt
		err := json.Unmarshal([]byte(tc.in), &p)
		if (err == nil) != tc.ok || tc.ok && !reflect.DeepEqual(p, tc.want) {
			t.Errorf("%s: %+v, %v", tc.in, p, err)
		}
	}
}

func TestStopAndDuration(t *testing.T) {
	var s Stop
	if json.Unmarshal([]byte(`"\n"`), &s) != nil || len(s) != 1 || s[0] != "\n" {
		t.Errorf("stop string: %v", s)
	}
	if json.Unmarshal([]byte(`["a","b"]`), &s) != nil || len(s) != 2 {
		t.Errorf("stop array: %v", s)
	}
	if json.Unmarshal([]byte(`5`), &s) == nil {
		t.Error("stop number accepted")
	}
	for in, want := range map[string]time.Duration{`"5m"`: 5 * time.Minute, `90`: 90 * time.Second, `"1.5"`: 1500 * time.Millisecond, `-1`: -time.Second, `"0"`: 0} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.Duration != want {
			t.Errorf("%s: %v, %v", in, d, err)
		}
	}
	for _, in := range []string{`"soon"`, `true`, `{}`,
		// Not finite, or beyond time.Duration's ±292 years: once converted, such values wrapped
		// to arbitrary durations (1e300 seconds became "keep forever").
		`"NaN"`, `"nan"`, `"Inf"`, `"+Inf"`, `"-Inf"`, `"infinity"`, `1e300`, `-1e300`, `"1e300"`, `9.3e9`, `-9.3e9`, `"3000000h"`,
	} {
		var d Duration
		if json.Unmarshal([]byte(in), &d) == nil {
			t.Errorf("%s accepted: %v", in, d)
		}
	}
	// The largest values in range still parse.
	for in, want := range map[string]time.Duration{`9e9`: 9e9 * time.Second, `-9e9`: -9e9 * time.Second, `"2562047h"`: 2562047 * time.Hour} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.Duration != want {
			t.Errorf("%s: %v, %v", in, d, err)
		}
	}
	b, _ := json.Marshal(Duration{90 * time.Second})
	if string(b) != `"1m30s"` {
		t.Errorf("marshal: %s", b)
	}
}

// FuzzPrompt checks that any prompt that decodes encodes to JSON that decodes to the same
// prompt.
func FuzzPrompt(f *testing.F) {
	for _, s := range []string{`"hello"`, `["a","b"]`, `[5,6,1]`, `[[5,1],[7,1]]`, `[]`, `[[]]`, `null`, `[null]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Prompt
		if json.Unmarshal(b, &p) != nil {
			return
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q Prompt
		if err := json.Unmarshal(out, &q); err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("%s → %+v → %s → %+v, %v", b, p, out, q, err)
		}
	})
}

// FuzzDuration checks that Duration never panics and that a duration it accepts marshals to
// JSON that reads back as the same duration.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{`"5m"`, `90`, `"1.5"`, `-1`, `"0"`, `"NaN"`, `1e300`, `"-9.3e9"`, `"2562047h"`, `null`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Duration
		if json.Unmarshal(b, &d) != nil {
			return
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var e Duration
		if err := json.Unmarshal(out, &e); err != nil || e != d {
			t.Fatalf("%s → %v → %s → %v, %v", b, d, out, e, err)
		}
	})
}

func TestTopLogprobs(t *testing.T) {
	top := TopLogprobs{{"zeta", -0.1}, {"</s>", -0.5}, {"alpha", -2}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as the server writes
	if err := enc.Encode([]TopLogprobs{top, {}, nil}); err != nil {
		t.Fatal(err)
	}
	b := bytes.TrimSpace(buf.Bytes())
	// Best first, not sorted by text, and special tokens as they are.
	if want := `[{"zeta":-0.1,"</s>":-0.5,"alpha":-2},{},null]`; string(b) != want {
		t.Errorf("marshal: %s, want %s", b, want)
	}
	var back []TopLogprobs
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, []TopLogprobs{top, {}, nil}) {
		t.Errorf("unmarshal: %+v, %v", back, err)
	}
	for _, in := range []string{`[]`, `{"a":"x"}`, `{"a":1`, `3`, `{"a":1}x`} {
		var tl TopLogprobs
		if json.Unmarshal([]byte(in), &tl) == nil {
			t.Errorf("%s accepted: %+v", in, tl)
		}
	}
}

// FuzzTopLogprobs checks that any top_logprobs object that decodes encodes to JSON that
// decodes to the same entries, in the same order.
func FuzzTopLogprobs(f *testing.F) {
	for _, s := range []string{`{"zeta":-0.1,"</s>":-0.5}`, `{}`, `null`, `{"a":1,"a":2}`, `{"\u003c":1e308}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var tl TopLogprobs
		if json.Unmarshal(b, &tl) != nil {
			return
		}
		out, err := json.Marshal(tl)
		if err != nil {
			t.Fatal(err)
		}
		var back TopLogprobs
		if err := json.Unmarshal(out, &back); err != nil || !reflect.DeepEqual(tl, back) {
			t.Fatalf("%s → %+v → %s → %+v, %v", b, tl, out, back, err)
		}
	})
}
