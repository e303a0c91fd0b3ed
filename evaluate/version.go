package evaluate

import "runtime/debug"

// BuildVersion is the module version and VCS revision of the running binary, as cells
// record it ("v0.3.0", "(devel) 1a2b3c4d5e6f-dirty"): the same string whether the CLI or
// the server ran the cell.
func BuildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		v += " " + rev[:min(12, len(rev))]
		if dirty {
			v += "-dirty"
		}
	}
	return v
}
