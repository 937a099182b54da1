package backend

import (
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// legacyOnly makes an mcp-go test server advertise only the session-era
// revisions (it serves 2026-07-28 too by default), for the tests of
// initialize, upstream sessions and GET streams.
var legacyOnly = server.WithStreamableHTTPProtocolVersions(
	mcp.ProtocolVersion20251125, "2025-06-18", "2025-03-26", "2024-11-05")
