// Package configclient keeps the data plane's config stream to the control
// plane: it says hello, applies every snapshot (ACK or NACK), keeps the last
// good one across reconnects, and carries health reports up the same stream.
package configclient
