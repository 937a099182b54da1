// Package registry implements RegistryService, the control plane's admin API:
// validated server CRUD with optimistic concurrency, settings, and the status
// views built from the discovery and health components.
package registry
