package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/zoo"
)

func TestZooProgressPlain(t *testing.T) {
	var buf bytes.Buffer
	ui := newProgressUI(&buf, "pull")
	big := int64(1 << 30)
	for _, p := range []zoo.Progress{
		{File: "config.json", Total: 651},
		{File: "model.safetensors", Total: big},
		{File: "config.json", Total: 651, Completed: 651},
		{File: "model.safetensors", Total: big, Completed: big / 10},
		{File: "model.safetensors", Total: big, Completed: big / 4},
		{File: "model.safetensors", Total: big, Completed: big / 3},
		{File: "model.safetensors", Total: big, Completed: big / 5}, // a retried chunk rolls back
		{File: "model.safetensors", Total: big, Completed: big},
		{File: "empty.json", Total: 0},
	} {
		ui.update(p)
	}
	ui.finish(true)
	want := `pull config.json: done (651 B)
pull model.safetensors: 25% (256 MiB of 1.0 GiB)
pull model.safetensors: done (1.0 GiB)
`
	if got := buf.String(); got != want {
		t.Fatalf("plain progress:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(buf.String(), "\x1b") {
		t.Fatal("escape sequences outside a terminal")
	}
}
