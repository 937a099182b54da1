// Package settings maps the dotted setting keys operators use ("pagination.enabled",
// "resilience.backoff", …) onto the Settings message, fills defaults and
// renders effective values, so the admin API and the snapshots agree.
package settings
