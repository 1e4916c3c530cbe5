// Package version holds the version tapswitch binaries report.
package version

import "runtime/debug"

// Version is set at build time with
// -ldflags "-X github.com/tapswitch/tapswitch/internal/version.Version=v1.2.3";
// otherwise it comes from the module's build information.
var Version = ""

// String returns the version, "devel" when none is known.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
