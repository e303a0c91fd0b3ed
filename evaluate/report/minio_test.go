package report

import (
	"bytes"
	"testing"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/internal/miniotest"
	"github.com/t5zoo/t5zoo/zoo"
)

// TestReportFromMinIO: a report of results in an s3:// prefix is the report of the same
// results in a folder.
func TestReportFromMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("MinIO skipped in -short mode")
	}
	srv := miniotest.Start(t)
	s3, err := zoo.NewS3Objects(zoo.S3Options{
		Endpoint: srv.Endpoint(), Bucket: srv.Bucket, Prefix: "evals/sweep",
		Creds: credentials.NewStaticV4(miniotest.AccessKey, miniotest.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	cells := synthetic()
	for _, c := range cells {
		putJSON(t, s3, evaluate.Cell{Model: c.Model.Name, Task: c.Task, Mode: c.Mode}.ResultKey(), c)
	}
	text := func(s evaluate.Store) string {
		r, err := Load(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		tables, err := r.Tables(TableOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteText(&buf, tables); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	dir, got := text(newStore(t, cells)), text(s3)
	if got != dir || len(got) < 100 {
		t.Errorf("from MinIO:\n%s\nfrom a folder:\n%s", got, dir)
	}
}
