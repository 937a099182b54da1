// Package version holds the build version of the mcpmesh binaries, set at link
// time with -ldflags "-X github.com/mcpmesh/mcpmesh/internal/version.Version=…".
package version

// Version is the release version; "dev" for local builds.
var Version = "dev"
