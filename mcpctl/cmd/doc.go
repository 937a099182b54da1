// Package cmd holds mcpctl's cobra commands, one file per verb. Each command
// validates its input before dialing, calls the control plane's RegistryService
// with a per-call deadline, and prints through the printer package.
package cmd
