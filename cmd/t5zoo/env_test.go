package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestZooEnvTable(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range envVars() {
		if seen[v.Name] || v.Description == "" || strings.ToUpper(v.Name) != v.Name {
			t.Errorf("env table row %+v: duplicate, undocumented or not upper case", v)
		}
		seen[v.Name] = true
	}
	t.Setenv("T5ZOO_HOME", "")
	t.Setenv("HOME", "/home/someone")
	if h, err := homeDir(); err != nil || h != filepath.Join("/home/someone", ".t5zoo") {
		t.Errorf("default T5ZOO_HOME: %q, %v", h, err)
	}
	t.Setenv("T5ZOO_HOME", "/data/zoo")
	if h, _ := homeDir(); h != "/data/zoo" {
		t.Errorf("T5ZOO_HOME: %q", h)
	}
	defer func() {
		if recover() == nil {
			t.Error("getenv of a name outside the table does not panic")
		}
	}()
	getenv("T5ZOO_NOT_IN_THE_TABLE")
}
