package serve

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/serve/api"
)

// FuzzJobRecord feeds arbitrary bytes as a job's job.json, as a starting server reads it:
// open must refuse what is not a job of this server, never panic, and a record it accepts
// must lay out its cells, show, and write back to the same record.
func FuzzJobRecord(f *testing.F) {
	const id = "20260101T000000.000Z-0123456789ab"
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	good, err := json.Marshal(jobRecord{Schema: jobSchema, ID: id, Status: api.EvalRunning, Created: created, MaxInputTokens: 512,
		Request: api.EvalRequest{Models: []string{"m", "acme/x:v1"}, Tasks: []string{"glue"}, Modes: []string{"predict", "rank"}, Limit: 4},
		Tasks:   []string{"glue/sst2", "squad"}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(good),
		strings.Replace(string(good), `"glue/sst2"`, `"glue/nothing"`, 1),
		strings.Replace(string(good), jobSchema, "t5zoo.eval.job/0", 1),
		strings.Replace(string(good), id, "20260101T000000.000Z-ffffffffffff", 1),
		`{"schema":"t5zoo.eval.job/1","id":"` + id + `","request":{"models":null,"modes":["beam"]},"tasks":["glue/sst2"]}`,
		`{}`, `null`, `[]`, ``, "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		home := t.TempDir()
		if err := os.MkdirAll(filepath.Join(home, id), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, id, "job.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		ej := &evalJobs{s: &Server{scrubber: strings.NewReplacer(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}, dir: home}
		j, err := ej.open(id)
		if err != nil {
			return
		}
		if j.rec.Schema != jobSchema || j.rec.ID != id || j.id != id {
			t.Fatalf("accepted %q as job %s: %+v", data, id, j.rec)
		}
		if j.tasks != nil && len(j.cells) != len(j.versions) {
			t.Fatalf("%d cells, %d versions", len(j.cells), len(j.versions))
		}
		ej.fill(j)
		v := ej.viewLocked(j, true)
		if v.ID != id || v.Counts.Total != len(j.cells) {
			t.Fatalf("view %+v of %d cells", v, len(j.cells))
		}
		before := j.rec
		// What save writes (save itself syncs the file, too slow for a fuzz loop).
		rec, err := ej.record(j)
		if err == nil {
			err = os.WriteFile(filepath.Join(home, id, "job.json"), rec, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		again, err := ej.open(id)
		if err != nil {
			t.Fatalf("reopen the record written back: %v", err)
		}
		before.Counts = again.rec.Counts // save writes the counts of the cells
		if !reflect.DeepEqual(jsonOf(t, before), jsonOf(t, again.rec)) {
			t.Fatalf("record changed on the way back:\n%s\n%s", jsonOf(t, before), jsonOf(t, again.rec))
		}
	})
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestJobIDs: IDs match the pattern request paths are checked against, and sort by time.
func TestJobIDs(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 13, 51, 0, 192_000_000, time.UTC)
	prev := ""
	for i := range 100 {
		id := newJobID(t0.Add(time.Duration(i) * time.Millisecond))
		if !jobIDPattern.MatchString(id) {
			t.Fatalf("%q does not match the ID pattern", id)
		}
		if id <= prev {
			t.Fatalf("%q sorts before %q, made a millisecond earlier", id, prev)
		}
		prev = id
	}
	if a, b := newJobID(t0), newJobID(t0); a == b {
		t.Errorf("two IDs of one millisecond are equal: %s", a)
	}
	for _, bad := range []string{"", "..", "../x", "20261202T135100.192Z-8a296b92b1e1/..", "20261202T135100.192Z-8A296B92B1E1", "20261202T135100.192Z-8a296b92b1e"} {
		if jobIDPattern.MatchString(bad) {
			t.Errorf("%q matches the ID pattern", bad)
		}
	}
}
