// Package discovery implements DiscoveryService.StreamConfig: it keeps the list
// of data planes, pushes the newest config snapshot to each of them (coalescing
// intermediate revisions) and hands their health reports to the health component.
package discovery
