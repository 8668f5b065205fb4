// Package buildinfo says which build of Causeway is running, from what the
// Go toolchain records in every binary: the module's version (a tag, or a
// pseudo-version), the version-control revision and time it was built from,
// whether the working tree had changes, and the Go version. Nothing is
// mutable at run time; a release may set the version at link time
// (-ldflags "-X github.com/causewaydb/causeway/internal/buildinfo.release=v1.2.3").
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// release, when set at link time, names the release and takes precedence
// over the module version.
var release string

// Info describes the running build.
type Info struct {
	Version   string // release, module version, or "devel"
	Revision  string // VCS revision ("" when not recorded, as in test binaries)
	Time      string // VCS commit time, RFC 3339
	Modified  bool   // built from a working tree with changes
	GoVersion string
}

// Read returns the running build's Info.
func Read() Info {
	info := Info{Version: "devel"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.GoVersion = bi.GoVersion
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		info.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	if release != "" {
		info.Version = release
	}
	return info
}

// String is one line a person can quote in a bug report, for example
// "devel (revision 4a8c843f2a1b, 2026-12-03T08:00:00Z, modified) go1.26.8".
func (i Info) String() string {
	var parts []string
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, "revision "+rev)
	}
	if i.Time != "" {
		parts = append(parts, i.Time)
	}
	if i.Modified {
		parts = append(parts, "modified")
	}
	s := i.Version
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	if i.GoVersion != "" {
		s += " " + i.GoVersion
	}
	return s
}

// Short is the version alone, with the revision when the version does not
// name one (what Status reports).
func (i Info) Short() string {
	if i.Version == "devel" && i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s := fmt.Sprintf("devel-%s", rev)
		if i.Modified {
			s += "-modified"
		}
		return s
	}
	return i.Version
}
