package main

import (
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	out, _, err := runCLI(t, "", "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"t5zoo ", "go  ", runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH, "kernels "} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
	flag, _, err := runCLI(t, "", "--version")
	if err != nil || flag != out {
		t.Errorf("--version: %v\n%s\nwant\n%s", err, flag, out)
	}
	js, _, err := runCLI(t, "", "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	if v.Version == "" || v.Go != runtime.Version() || v.OS != runtime.GOOS || v.Arch != runtime.GOARCH ||
		!slices.Contains([]string{"generic", "avx2", "avx512"}, v.Kernels) {
		t.Errorf("version --json: %+v", v)
	}
	// The root without a verb still shows the help, and an unknown verb is an error.
	if out, _, err := runCLI(t, ""); err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("t5zoo: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "", "nosuchverb"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("t5zoo nosuchverb: %v", err)
	}
}
