// Package mcpservers reads and writes the MCP client config files that list
// servers (Claude Desktop, Cursor, Windsurf and Claude Code "mcpServers",
// VS Code "servers"), for mcpctl server import and server export.
package mcpservers
