package hub

import (
	"fmt"
	"slices"
	"testing"
)

func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 5-9/*", "bytes -1-2/3", "bytes 1-2", "bits 0-1/2", "bytes 9223372036854775807-0/9223372036854775807", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		start, total, ok := contentRange(h)
		if !ok {
			return
		}
		if start < 0 || total < -1 {
			t.Fatalf("%q -> start %d, total %d", h, start, total)
		}
		tot := "*"
		if total >= 0 {
			tot = fmt.Sprint(total)
		}
		s2, t2, ok := contentRange(fmt.Sprintf("bytes %d-0/%s", start, tot))
		if !ok || s2 != start || t2 != total {
			t.Fatalf("%q does not round-trip", h)
		}
	})
}

func FuzzWeightShards(f *testing.F) {
	f.Add([]byte(`{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}`))
	f.Add([]byte(`{"weight_map": {"a": "../x"}}`))
	f.Add([]byte(`{"weight_map": {}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		shards, err := WeightShards(data)
		if err != nil {
			return
		}
		if len(shards) == 0 || !slices.IsSorted(shards) || len(slices.Compact(slices.Clone(shards))) != len(shards) {
			t.Fatalf("shards %q", shards)
		}
		for _, s := range shards {
			if checkFile(s) != nil {
				t.Fatalf("unsafe shard %q", s)
			}
		}
	})
}
