package buildinfo

import "testing"

func TestString(t *testing.T) {
	for _, c := range []struct {
		info        Info
		want, short string
	}{
		{Info{Version: "devel"}, "devel", "devel"},
		{Info{Version: "devel", Revision: "4a8c843f2a1b9c0d", Time: "2026-12-03T08:00:00Z", Modified: true, GoVersion: "go1.26.8"},
			"devel (revision 4a8c843f2a1b, 2026-12-03T08:00:00Z, modified) go1.26.8", "devel-4a8c843f2a1b-modified"},
		{Info{Version: "v1.2.3", Revision: "abc", GoVersion: "go1.26.8"}, "v1.2.3 (revision abc) go1.26.8", "v1.2.3"},
	} {
		if got := c.info.String(); got != c.want {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
		if got := c.info.Short(); got != c.short {
			t.Errorf("Short() = %q, want %q", got, c.short)
		}
	}
}

func TestReadNamesTheGoVersion(t *testing.T) {
	info := Read()
	if info.GoVersion == "" || info.Version == "" {
		t.Fatalf("Read() = %+v; the toolchain records at least the Go version, and Version is never empty", info)
	}
}

func TestReleaseTakesPrecedence(t *testing.T) {
	old := release
	t.Cleanup(func() { release = old })
	release = "v9.9.9"
	if got := Read().Version; got != "v9.9.9" {
		t.Fatalf("Version = %q with a release set at link time", got)
	}
}
