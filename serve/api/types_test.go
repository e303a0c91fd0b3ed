package api

import (
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
	for _, in := range []string{`"soon"`, `true`, `{}`} {
		var d Duration
		if json.Unmarshal([]byte(in), &d) == nil {
			t.Errorf("%s accepted", in)
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
