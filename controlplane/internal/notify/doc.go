// Package notify is a tiny coalescing broadcaster: producers say "something
// changed", each subscriber holds at most one pending signal, so a slow reader
// never blocks a producer and never accumulates a backlog.
package notify
